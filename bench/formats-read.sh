#!/bin/bash
# Times a whole-image sequential read by imagemount's engine for the read-only formats (the
# qcow2-bench tool: ImageOpener, 4 MiB requests, written to /dev/null) against
# `qemu-img convert -f FORMAT -O raw` of the same images, 1 GiB virtual with DATA_MIB of data in
# 4 MiB pieces. Prints wall times, the ratio (qemu-img time / ours: above 1 means we are faster)
# and peak RSS of both. Each run follows a warm-up, so both sides read from the page cache.
#
# usage: bench/formats-read.sh [FORMAT...] [--data MIB]   (formats: vpc vdi vhdx qcow qed parallels; default all, 256 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_MIB=256
formats=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA_MIB=$2; shift 2 ;;
        *) formats+=("$1"); shift ;;
    esac
done
[ ${#formats[@]} -gt 0 ] || formats=(vpc vdi vhdx qcow qed parallels)

swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
BIN=$(swift build -c release --show-bin-path)/qcow2-bench

WORK=$(mktemp -d /dev/shm/imagemount-bench.XXXXXX 2>/dev/null || mktemp -d /tmp/imagemount-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

truncate -s 1G "$WORK/src.raw"
pieces=$((DATA_MIB / 4))
stride=$((1024 / pieces))
for ((i = 0; i < pieces; i++)); do
    head -c $((3 << 20)) /dev/urandom | base64 -w0 |
        dd of="$WORK/src.raw" bs=1M seek=$((i * stride)) conv=notrunc status=none iflag=fullblock
done

images=()
for f in "${formats[@]}"; do
    case "$f" in
        vpc) qemu-img convert -O vpc "$WORK/src.raw" "$WORK/dynamic.vhd"
             qemu-img convert -O vpc -o subformat=fixed "$WORK/src.raw" "$WORK/fixed.vhd"
             images+=("vpc:dynamic.vhd" "vpc:fixed.vhd") ;;
        vdi) qemu-img convert -O vdi "$WORK/src.raw" "$WORK/dynamic.vdi"
             qemu-img convert -O vdi -o static=on "$WORK/src.raw" "$WORK/static.vdi"
             images+=("vdi:dynamic.vdi" "vdi:static.vdi") ;;
        vhdx) qemu-img convert -O vhdx "$WORK/src.raw" "$WORK/dynamic.vhdx"
             qemu-img convert -O vhdx -o subformat=fixed "$WORK/src.raw" "$WORK/fixed.vhdx"
             images+=("vhdx:dynamic.vhdx" "vhdx:fixed.vhdx") ;;
        qcow) qemu-img convert -O qcow "$WORK/src.raw" "$WORK/plain.qcow"
             qemu-img convert -c -O qcow "$WORK/src.raw" "$WORK/compressed.qcow" || true   # QEMU 7.2 exits 1 after writing it all
             images+=("qcow:plain.qcow" "qcow:compressed.qcow") ;;
        qed) qemu-img convert -O qed "$WORK/src.raw" "$WORK/default.qed"
             qemu-img convert -O qed -o cluster_size=4096,table_size=2 "$WORK/src.raw" "$WORK/4k.qed"
             images+=("qed:default.qed" "qed:4k.qed") ;;
        parallels) qemu-img convert -O parallels "$WORK/src.raw" "$WORK/default.hdd"
             qemu-img convert -O parallels -o cluster_size=64k "$WORK/src.raw" "$WORK/64k.hdd"
             images+=("parallels:default.hdd" "parallels:64k.hdd") ;;
        *) echo "formats-read.sh: unknown format '$f'" >&2; exit 2 ;;
    esac
done

measure() {
    /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}

printf '%-12s %10s %12s %6s %14s %14s\n' image "qemu-img s" "imagemount s" ratio "qemu-img RSS" "imagemount RSS"
for entry in "${images[@]}"; do
    fmt=${entry%%:*} name=${entry#*:}
    img="$WORK/$name"
    cat "$img" >/dev/null
    measure qemu-img convert -f "$fmt" -O raw "$img" "$WORK/out.raw" >/dev/null; rm -f "$WORK/out.raw"
    read -r qs qrss _ _ < <(measure qemu-img convert -f "$fmt" -O raw "$img" "$WORK/out.raw"); rm -f "$WORK/out.raw"
    measure "$BIN" --format "$fmt" "$img" >/dev/null
    read -r ms mrss _ _ < <(measure "$BIN" --format "$fmt" "$img")
    ratio=$(awk -v q="$qs" -v m="$ms" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }')
    printf '%-12s %10s %12s %6s %10s KiB %10s KiB\n' "$name" "$qs" "$ms" "$ratio" "$qrss" "$mrss"
done
