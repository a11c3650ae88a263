#!/bin/bash
# Writing into vmdk, vdi, vpc (VHD), vhdx, qed and parallels images by imagemount against qemu-img, in one run:
#  - raw write path: DATA_MIB of random data written sequentially (1 MiB writes) into an empty
#    image by qcow2-bench --write-from (ImageOpener, then flush), against
#    `qemu-img convert -O FORMAT` of the same data;
#  - copy-in: `imagemount copy-in` of one DATA_MIB file into an ext4 guest in the format, timed
#    against the same qemu-img convert of the data (the anchor for moving that many bytes into
#    an image of the format).
# Both sides start from the page cache and end with the image synced. Prints best-of-ROUNDS wall
# times, ratios (qemu-img time / ours: above 1 means imagemount is faster) and peak RSS, and
# checks the results (qemu-img compare; qemu-img check where qemu-img has one; e2fsck -fn).
#
# usage: bench/formats-write.sh [DATA_MIB]   (default 256; ROUNDS=n, default 3; FORMATS="vmdk vdi vpc vhdx qed parallels")
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_MIB=${1:-256}
FORMATS=${FORMATS:-vmdk vdi vpc vhdx qed parallels}

swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d /tmp/imagemount-bench-fmtw.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
head -c $((DATA_MIB << 20)) /dev/urandom > "$WORK/src.raw"
# The guest: ext4 with room for the file.
truncate -s $((DATA_MIB * 2 + 64))M "$WORK/fs.raw"
mke2fs -q -F -t ext4 "$WORK/fs.raw"
sync

measure() {
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a ? b : a) }'; }
checked() { case "$1" in vpc) return 1 ;; *) return 0 ;; esac; }

printf '%-6s %-8s %10s %12s %6s %14s %14s\n' format path "qemu-img s" "imagemount s" ratio "qemu-img RSS" "imagemount RSS"
for fmt in $FORMATS; do
    cat "$WORK/src.raw" >/dev/null
    qs=999; ms=999; cs=999; qrss=0; mrss=0; crss=0
    for _ in $(seq "${ROUNDS:-3}"); do
        rm -f "$WORK/q.$fmt"; sync
        read -r t r < <(measure sh -c "qemu-img convert -O $fmt '$WORK/src.raw' '$WORK/q.$fmt' && sync '$WORK/q.$fmt'")
        qs=$(best "$qs" "$t"); [ "$r" -gt "$qrss" ] && qrss=$r
        rm -f "$WORK/m.$fmt"; sync
        qemu-img create -q -f "$fmt" "$WORK/m.$fmt" "${DATA_MIB}M"
        read -r t r < <(measure sh -c "'$BIN/qcow2-bench' --format $fmt --write-from '$WORK/src.raw' '$WORK/m.$fmt' && sync '$WORK/m.$fmt'")
        ms=$(best "$ms" "$t"); [ "$r" -gt "$mrss" ] && mrss=$r
        rm -f "$WORK/g.$fmt"; qemu-img convert -O "$fmt" "$WORK/fs.raw" "$WORK/g.$fmt"; sync
        read -r t r < <(measure sh -c "'$BIN/imagemount' copy-in -a '$WORK/g.$fmt' '$WORK/src.raw' / && sync '$WORK/g.$fmt'")
        cs=$(best "$cs" "$t"); [ "$r" -gt "$crss" ] && crss=$r
    done
    # qemu-img may round a vpc size up to its CHS geometry: compare the data part.
    qemu-img compare -q -f "$fmt" -F raw "$WORK/m.$fmt" "$WORK/src.raw" || { echo "$fmt: imagemount's image differs from the source" >&2; exit 1; }
    if checked "$fmt"; then
        qemu-img check -q -f "$fmt" "$WORK/m.$fmt" || { echo "$fmt: qemu-img check failed on imagemount's image" >&2; exit 1; }
        qemu-img check -q -f "$fmt" "$WORK/g.$fmt" || { echo "$fmt: qemu-img check failed after copy-in" >&2; exit 1; }
    fi
    qemu-img convert -f "$fmt" -O raw "$WORK/g.$fmt" "$WORK/g.raw"
    e2fsck -fn "$WORK/g.raw" >/dev/null || { echo "$fmt: e2fsck found errors after copy-in" >&2; exit 1; }
    rm -f "$WORK/g.raw"
    ratio=$(awk -v q="$qs" -v m="$ms" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }')
    cratio=$(awk -v q="$qs" -v m="$cs" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }')
    printf '%-6s %-8s %10s %12s %6s %10s KiB %10s KiB\n' "$fmt" write "$qs" "$ms" "$ratio" "$qrss" "$mrss"
    printf '%-6s %-8s %10s %12s %6s %10s KiB %10s KiB\n' "$fmt" copy-in "$qs" "$cs" "$cratio" "$qrss" "$crss"
done
