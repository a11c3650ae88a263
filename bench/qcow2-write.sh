#!/bin/bash
# Times sequential 1 MiB writes into an empty qcow2 image by imagemount's writer (qcow2-bench
# --write-from, which reads a raw source in 1 MiB pieces and writes each through ImageOpener, then
# flushes and closes) against `qemu-img convert -O qcow2` of the same source, for 64 KiB clusters,
# for extended L2 entries, and LUKS-encrypted (qemu-img's default aes-xts-plain64; key derivation
# kept short with iter-time=10 on both sides: the image is created, and unlocked, with it). The source is DATA_MIB of random data (no zero runs, so neither side
# can skip anything); both sides start from the page cache and end with the image flushed to disk.
# Prints wall times, the ratio (qemu-img time / ours: above 1 means we are faster) and peak RSS.
#
# usage: bench/qcow2-write.sh [DATA_MIB]   (default 512; ROUNDS=n runs per side, best kept, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_MIB=${1:-512}

swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
BIN=$(swift build -c release --show-bin-path)/qcow2-bench

WORK=$(mktemp -d /tmp/imagemount-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
head -c $((DATA_MIB << 20)) /dev/urandom > "$WORK/src.raw"
sync   # the source's own write-back must not land in the first measurement

measure() {
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}

printf '%-10s %10s %12s %6s %14s %14s\n' layout "qemu-img s" "imagemount s" ratio "qemu-img RSS" "imagemount RSS"
printf 'bench passphrase' > "$WORK/key"
SECRET="--object secret,id=s,file=$WORK/key"
for layout in plain extl2 luks; do
    opts="cluster_size=65536"; secret=""; key=""; name="$WORK/m.qcow2"; flag="-f qcow2"
    [ "$layout" = extl2 ] && opts="cluster_size=65536,extended_l2=on"
    if [ "$layout" = luks ]; then
        opts="cluster_size=65536,encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10"
        secret="$SECRET"; key="--key-file $WORK/key"; flag="--image-opts"
        name="driver=qcow2,file.filename=$WORK/m.qcow2,encrypt.key-secret=s"
    fi
    cat "$WORK/src.raw" >/dev/null
    # Best of ROUNDS runs each, alternating: the first write after a large delete is slowed
    # by the host filesystem (whichever side ran then looked twice as slow).
    qs=999; ms=999; qrss=0; mrss=0
    for _ in $(seq "${ROUNDS:-3}"); do
        rm -f "$WORK/q.qcow2"; sync
        read -r t r < <(measure sh -c "qemu-img convert $secret -O qcow2 -o $opts '$WORK/src.raw' '$WORK/q.qcow2' && sync '$WORK/q.qcow2'")
        qs=$(awk -v a="$qs" -v b="$t" 'BEGIN { print (b < a ? b : a) }'); [ "$r" -gt "$qrss" ] && qrss=$r
        rm -f "$WORK/m.qcow2"; sync
        qemu-img create -q $secret -f qcow2 -o "$opts" "$WORK/m.qcow2" "${DATA_MIB}M"
        read -r t r < <(measure sh -c "'$BIN' --write-from '$WORK/src.raw' '$WORK/m.qcow2' $key && sync '$WORK/m.qcow2'")
        ms=$(awk -v a="$ms" -v b="$t" 'BEGIN { print (b < a ? b : a) }'); [ "$r" -gt "$mrss" ] && mrss=$r
    done
    if [ "$layout" = luks ]; then
        qemu-img compare -q $secret --image-opts "$name" "driver=raw,file.filename=$WORK/src.raw" || { echo "imagemount's image differs from the source" >&2; exit 1; }
    else
        qemu-img compare -q -f qcow2 -F raw "$WORK/m.qcow2" "$WORK/src.raw" || { echo "imagemount's image differs from the source" >&2; exit 1; }
    fi
    qemu-img check -q $secret $flag "$name" || { echo "qemu-img check failed on imagemount's image" >&2; exit 1; }
    ratio=$(awk -v q="$qs" -v m="$ms" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }')
    printf '%-10s %10s %12s %6s %10s KiB %10s KiB\n' "$layout" "$qs" "$ms" "$ratio" "$qrss" "$mrss"
done
