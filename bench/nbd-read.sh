#!/bin/bash
# Times a sequential read of a whole raw image (SIZE_MIB, 1 GiB by default, all data: no holes
# for block status to skip) served over NBD by nbdkit on a Unix socket behind its delay filter
# (rdelay=DELAY, 1ms by default: every read request waits that long, as a remote disk would):
#   ours        imagemount's engine (the qcow2-bench tool: ImageOpener on the nbd+unix:// URI,
#               4 MiB reads, each split into 256 KiB NBD requests with up to 16 in flight)
#   ours-1      the same with one request at a time (IMAGEMOUNT_NBD_IN_FLIGHT=1)
#   qemu-img    qemu-img convert -O raw nbd+unix:///?socket=… /dev/null-like target
# Prints wall times, ratios (qemu-img time / ours: above 1 means we are faster; ours-1 / ours:
# what pipelining buys) and peak RSS of each. One warm-up of each first.
#
# usage: bench/nbd-read.sh [--size MIB] [--delay 1ms] [--bin PATH-TO-qcow2-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=1024
DELAY=1ms
BIN=
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE_MIB=$2; shift 2 ;;
        --delay) DELAY=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        *) echo "nbd-read.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$BIN" ]; then
    swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
    BIN=$(swift build -c release --show-bin-path)/qcow2-bench
fi

WORK=$(mktemp -d /dev/shm/imagemount-bench.XXXXXX 2>/dev/null || mktemp -d /tmp/imagemount-bench.XXXXXX)
cleanup() {
    [ -f "$WORK/nbdkit.pid" ] && kill "$(cat "$WORK/nbdkit.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src.raw"
nbdkit -U "$WORK/nbd.sock" -P "$WORK/nbdkit.pid" --filter=delay file file="$WORK/src.raw" rdelay="$DELAY" </dev/null >/dev/null 2>&1
URI="nbd+unix:///?socket=$WORK/nbd.sock"

measure() {
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}
ours() { measure "$BIN" --format raw "$URI"; }
ours1() { measure env IMAGEMOUNT_NBD_IN_FLIGHT=1 "$BIN" --format raw "$URI"; }
# qemu-img writes somewhere: a raw file on the same tmpfs, removed after each run.
theirs() { local t; t=$(measure qemu-img convert -f raw -O raw "$URI" "$WORK/out.raw"); rm -f "$WORK/out.raw"; echo "$t"; }

cat "$WORK/src.raw" >/dev/null
ours >/dev/null; ours1 >/dev/null; theirs >/dev/null
read -r ms mrss < <(ours)
read -r m1s m1rss < <(ours1)
read -r qs qrss < <(theirs)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "sequential read of $SIZE_MIB MiB over NBD (nbdkit file, delay filter rdelay=$DELAY), Unix socket"
printf '%-34s %8s %12s\n' run "wall s" "peak RSS"
printf '%-34s %8s %8s KiB\n' "imagemount (16 in flight)" "$ms" "$mrss"
printf '%-34s %8s %8s KiB\n' "imagemount (1 in flight)" "$m1s" "$m1rss"
printf '%-34s %8s %8s KiB\n' "qemu-img convert -O raw" "$qs" "$qrss"
echo "ratio qemu-img / imagemount:            $(ratio "$qs" "$ms")"
echo "ratio 1-in-flight / 16-in-flight:       $(ratio "$m1s" "$ms")"
