#!/bin/bash
# Times a whole-image sequential read by imagemount's qcow2 engine (the qcow2-bench tool, which reads
# through ImageOpener in 4 MiB requests and writes to /dev/null) against `qemu-img convert -O raw`
# on the same images: plain, zlib-compressed and zstd-compressed qcow2, 1 GiB virtual with 256 MiB
# of data. Prints wall times, the ratio (qemu-img time / ours: above 1 means we are faster) and
# peak RSS of both. Every run is preceded by a warm-up read so both sides read from the page cache.
#
# usage: bench/qcow2-read.sh [DATA_MIB]   (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_MIB=${1:-256}


swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
BIN=$(swift build -c release --show-bin-path)/qcow2-bench

WORK=$(mktemp -d /tmp/imagemount-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# 1 GiB sparse source; DATA_MIB of base64 text (compresses about 4:3, as real file data often does)
# spread in 4 MiB pieces, one every 1 GiB / (DATA_MIB / 4).
truncate -s 1G "$WORK/src.raw"
pieces=$((DATA_MIB / 4))
stride=$((1024 / pieces))
for ((i = 0; i < pieces; i++)); do
    head -c $((3 << 20)) /dev/urandom | base64 -w0 |
        dd of="$WORK/src.raw" bs=1M seek=$((i * stride)) conv=notrunc status=none iflag=fullblock
done
qemu-img convert -O qcow2 "$WORK/src.raw" "$WORK/plain.qcow2"
qemu-img convert -c -O qcow2 "$WORK/src.raw" "$WORK/zlib.qcow2"
qemu-img convert -c -O qcow2 -o compression_type=zstd "$WORK/src.raw" "$WORK/zstd.qcow2"

# seconds and peak RSS (KiB) of a command, from GNU time.
measure() {
    /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}

printf '%-8s %10s %12s %6s %14s %14s %12s %14s\n' image "qemu-img s" "imagemount s" ratio \
    "qemu-img RSS" "imagemount RSS" "qemu-img CPU" "imagemount CPU"
for image in plain zlib zstd; do
    img="$WORK/$image.qcow2"
    cat "$img" >/dev/null
    measure qemu-img convert -O raw "$img" "$WORK/out.raw" >/dev/null; rm -f "$WORK/out.raw"
    read -r qs qrss qu qsys < <(measure qemu-img convert -O raw "$img" "$WORK/out.raw"); rm -f "$WORK/out.raw"
    measure "$BIN" "$img" >/dev/null
    read -r ms mrss mu msys < <(measure "$BIN" "$img")
    ratio=$(awk -v q="$qs" -v m="$ms" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }')
    qcpu=$(awk -v u="$qu" -v s="$qsys" 'BEGIN { printf "%.2f s", u + s }')
    mcpu=$(awk -v u="$mu" -v s="$msys" 'BEGIN { printf "%.2f s", u + s }')
    printf '%-8s %10s %12s %6s %10s KiB %10s KiB %12s %14s\n' "$image" "$qs" "$ms" "$ratio" "$qrss" "$mrss" "$qcpu" "$mcpu"
done
