#!/bin/bash
# Read throughput of a LUKS-encrypted qcow2 (qemu-img's default aes-xts-plain64) against the same
# image unencrypted, through imagemount's qcow2 engine (the qcow2-bench tool: ImageOpener, 4 MiB
# requests, output to /dev/null), with `qemu-img convert -O raw` on both for reference.
# Prints wall times and the ratio encrypted/plain (1.0 = decryption is free; AES-NI keeps it small).
# The first row reads from the page cache (after a warm-up read): the plain side is then a memcpy,
# so the ratio shows the cipher's cost against memory bandwidth. When run as root, a second row
# reads both images cold (page cache dropped before each run), as a mount of an image on disk does.
#
# usage: bench/luks-read.sh [DATA_MIB]   (default 512; SCRATCH=path picks the build folder)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_MIB=${1:-512}
SCRATCH=${SCRATCH:-.build}

swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product qcow2-bench >/dev/null
BIN=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/qcow2-bench

WORK=$(mktemp -d /tmp/imagemount-luks-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
head -c $((DATA_MIB << 20)) /dev/urandom > "$WORK/src.raw"
printf 'bench passphrase' > "$WORK/key"
SECRET="--object secret,id=s,file=$WORK/key"
qemu-img convert -O qcow2 "$WORK/src.raw" "$WORK/plain.qcow2"
qemu-img convert $SECRET -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=200 "$WORK/src.raw" "$WORK/luks.qcow2"

seconds() {
    /usr/bin/time -f '%e' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}

grep -qw aes /proc/cpuinfo && echo "AES-NI: yes" || echo "AES-NI: no"
"$BIN" "$WORK/plain.qcow2" >/dev/null; "$BIN" "$WORK/luks.qcow2" --key-file "$WORK/key" >/dev/null
# qcow2-bench prints "opened in N ms" and "read B bytes in M ms (R MiB/s)"; M includes the open,
# whose LUKS unlock (PBKDF2 of keyslot and digest, ~iter-time) is shown apart and left out of the ratio.
bench() { "$BIN" "$@" > "$WORK/out"; }
bench "$WORK/plain.qcow2"
plain_ms=$(($(sed -n 's/^read [0-9]* bytes in \([0-9]*\) ms.*/\1/p' "$WORK/out") - $(sed -n 's/^opened in \([0-9]*\) ms/\1/p' "$WORK/out")))
bench "$WORK/luks.qcow2" --key-file "$WORK/key"
unlock_ms=$(sed -n 's/^opened in \([0-9]*\) ms/\1/p' "$WORK/out")
luks_ms=$(($(sed -n 's/^read [0-9]* bytes in \([0-9]*\) ms.*/\1/p' "$WORK/out") - unlock_ms))
plain=$(echo "scale=3; $plain_ms / 1000" | bc)
luks=$(echo "scale=3; $luks_ms / 1000" | bc)
qplain=$(seconds qemu-img convert -O raw "$WORK/plain.qcow2" "$WORK/out.raw")
qluks=$(seconds qemu-img convert $SECRET --image-opts "driver=qcow2,file.filename=$WORK/luks.qcow2,encrypt.key-secret=s" -O raw "$WORK/out.raw")

cold=""
if [ -w /proc/sys/vm/drop_caches ]; then
    sync; echo 3 > /proc/sys/vm/drop_caches; bench "$WORK/plain.qcow2"
    cplain_ms=$(($(sed -n 's/^read [0-9]* bytes in \([0-9]*\) ms.*/\1/p' "$WORK/out") - $(sed -n 's/^opened in \([0-9]*\) ms/\1/p' "$WORK/out")))
    sync; echo 3 > /proc/sys/vm/drop_caches; bench "$WORK/luks.qcow2" --key-file "$WORK/key"
    cluks_ms=$(($(sed -n 's/^read [0-9]* bytes in \([0-9]*\) ms.*/\1/p' "$WORK/out") - $(sed -n 's/^opened in \([0-9]*\) ms/\1/p' "$WORK/out")))
    cold=$(printf '%-22s %10s %10s %8s' "imagemount, cold cache" "$(echo "scale=3; $cplain_ms / 1000" | bc)" \
        "$(echo "scale=3; $cluks_ms / 1000" | bc)" "$(echo "scale=2; $cluks_ms / $cplain_ms" | bc)")
fi

# qemu-io's open of each image, for the unlock's cost on QEMU's side (its crypto backend's PBKDF2).
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
qopen_plain=$(ms qemu-io -f qcow2 -c 'read 0 512' "$WORK/plain.qcow2")
qopen_luks=$(ms qemu-io $SECRET --image-opts "driver=qcow2,file.filename=$WORK/luks.qcow2,encrypt.key-secret=s" -c 'read 0 512')

echo "LUKS unlock (PBKDF2, iter-time=200 ms as qemu-img calibrated it): imagemount ${unlock_ms} ms, qemu-io $((qopen_luks - qopen_plain)) ms"
printf '%-22s %10s %10s %8s\n' "" "plain s" "LUKS s" "ratio"
printf '%-22s %10s %10s %8s\n' "imagemount (${DATA_MIB} MiB)" "$plain" "$luks" "$(echo "scale=2; $luks / $plain" | bc)"
printf '%-22s %10s %10s %8s\n' "qemu-img convert" "$qplain" "$qluks" "$(echo "scale=2; $qluks / $qplain" | bc)"
[ -n "$cold" ] && echo "$cold"
exit 0
