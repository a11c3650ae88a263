#!/bin/bash
# Times a whole-image sequential read by imagemount's VMDK engine (the qcow2-bench tool reads any
# format through ImageOpener, in 4 MiB requests, to /dev/null) against `qemu-img convert -O raw`
# on the same images: monolithicSparse, monolithicFlat and streamOptimized, 1 GiB virtual with
# DATA_MIB of data. Prints wall times, the ratio (qemu-img time / ours: above 1 means we are
# faster) and peak RSS of both. Each run follows a warm-up run, so both read from the page cache.
#
# usage: bench/vmdk-read.sh [DATA_MIB]   (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_MIB=${1:-256}

swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
BIN=$(swift build -c release --show-bin-path)/qcow2-bench

WORK=$(mktemp -d /dev/shm/imagemount-bench.XXXXXX 2>/dev/null || mktemp -d /tmp/imagemount-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# 1 GiB sparse source; DATA_MIB of base64 text in 4 MiB pieces spread over the disk.
truncate -s 1G "$WORK/src.raw"
pieces=$((DATA_MIB / 4))
stride=$((1024 / pieces))
for ((i = 0; i < pieces; i++)); do
    head -c $((3 << 20)) /dev/urandom | base64 -w0 |
        dd of="$WORK/src.raw" bs=1M seek=$((i * stride)) conv=notrunc status=none iflag=fullblock
done
for sub in monolithicSparse monolithicFlat streamOptimized; do
    qemu-img convert -O vmdk -o subformat=$sub "$WORK/src.raw" "$WORK/$sub.vmdk"
done
rm -f "$WORK/src.raw"

measure() {
    /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}

printf '%-17s %10s %12s %6s %14s %14s\n' image "qemu-img s" "imagemount s" ratio "qemu-img RSS" "imagemount RSS"
for sub in monolithicSparse monolithicFlat streamOptimized; do
    img="$WORK/$sub.vmdk"
    measure qemu-img convert -O raw "$img" "$WORK/out.raw" >/dev/null; rm -f "$WORK/out.raw"
    read -r qs qrss _ _ < <(measure qemu-img convert -O raw "$img" "$WORK/out.raw"); rm -f "$WORK/out.raw"
    measure "$BIN" "$img" >/dev/null
    read -r ms mrss _ _ < <(measure "$BIN" "$img")
    ratio=$(awk -v q="$qs" -v m="$ms" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }')
    printf '%-17s %10s %12s %6s %10s KiB %10s KiB\n' "$sub" "$qs" "$ms" "$ratio" "$qrss" "$mrss"
done
