#!/bin/bash
# Times a sequential read of a whole raw image (SIZE_MIB, 1 GiB by default, all data: no holes
# for block status to skip) served over NBD by nbdkit on a Unix socket behind its delay filter
# (rdelay=DELAY, 1ms by default: every read request waits that long, as a remote disk would):
#   ours        imagemount's engine (the qcow2-bench tool: ImageOpener on the nbd+unix:// URI,
#               4 MiB reads, each split into 256 KiB NBD requests with up to 16 in flight,
#               with sequential read-ahead keeping them in flight between reads)
#   ours-nora   the same without read-ahead (IMAGEMOUNT_NBD_READAHEAD=0): each read waits for
#               its own requests, with nothing in flight between reads
#   ours-1      one request at a time (IMAGEMOUNT_NBD_IN_FLIGHT=1)
#   qemu-img    qemu-img convert -O raw nbd+unix:///?socket=… /dev/null-like target
# Prints wall times, ratios (qemu-img time / ours: above 1 means we are faster; ours-1 / ours:
# what pipelining buys) and peak RSS of each. One warm-up of each first.
#
# Then a sparse section: an export of the same size (same server and delay) holding 1/32 of it
# as data (8 pieces spread over it, the rest holes), read whole by
#   ours        with block status (base:allocation: holes are not read)
#   ours-nobs   with it off (IMAGEMOUNT_NBD_BLOCK_STATUS=0: every byte read)
#   qemu-img    qemu-img convert -O raw (which asks block status too)
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
    [ -f "$WORK/sparse.pid" ] && kill "$(cat "$WORK/sparse.pid")" 2>/dev/null || true
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
oursnora() { measure env IMAGEMOUNT_NBD_READAHEAD=0 "$BIN" --format raw "$URI"; }
# qemu-img writes somewhere: a raw file on the same tmpfs, removed after each run.
theirs() { local t; t=$(measure qemu-img convert -f raw -O raw "$URI" "$WORK/out.raw"); rm -f "$WORK/out.raw"; echo "$t"; }

cat "$WORK/src.raw" >/dev/null
ours >/dev/null; ours1 >/dev/null; theirs >/dev/null
read -r ms mrss < <(ours)
read -r mns mnrss < <(oursnora)
read -r m1s m1rss < <(ours1)
read -r qs qrss < <(theirs)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "sequential read of $SIZE_MIB MiB over NBD (nbdkit file, delay filter rdelay=$DELAY), Unix socket"
printf '%-34s %8s %12s\n' run "wall s" "peak RSS"
printf '%-34s %8s %8s KiB\n' "imagemount (16 in flight)" "$ms" "$mrss"
printf '%-34s %8s %8s KiB\n' "imagemount (no read-ahead)" "$mns" "$mnrss"
printf '%-34s %8s %8s KiB\n' "imagemount (1 in flight)" "$m1s" "$m1rss"
printf '%-34s %8s %8s KiB\n' "qemu-img convert -O raw" "$qs" "$qrss"
echo "ratio qemu-img / imagemount:            $(ratio "$qs" "$ms")"
echo "ratio 1-in-flight / 16-in-flight:       $(ratio "$m1s" "$ms")"
echo "ratio no read-ahead / read-ahead:       $(ratio "$mns" "$ms")"

# Sparse: SIZE_MIB with SIZE_MIB/32 MiB of data in 8 pieces, on the same tmpfs (holes via SEEK_HOLE).
rm -f "$WORK/src.raw"
truncate -s $((SIZE_MIB << 20)) "$WORK/sparse.raw"
piece=$((SIZE_MIB / 32 / 8)); [ "$piece" -ge 1 ] || piece=1
for i in 0 1 2 3 4 5 6 7; do
    dd if=/dev/urandom of="$WORK/sparse.raw" bs=1M count=$piece seek=$((i * SIZE_MIB / 8 + 3)) conv=notrunc status=none
done
nbdkit -U "$WORK/sparse.sock" -P "$WORK/sparse.pid" --filter=delay file file="$WORK/sparse.raw" rdelay="$DELAY" </dev/null >/dev/null 2>&1
SURI="nbd+unix:///?socket=$WORK/sparse.sock"
sours() { measure "$BIN" --format raw "$SURI"; }
snobs() { measure env IMAGEMOUNT_NBD_BLOCK_STATUS=0 "$BIN" --format raw "$SURI"; }
stheirs() { local t; t=$(measure qemu-img convert -f raw -O raw "$SURI" "$WORK/out.raw"); rm -f "$WORK/out.raw"; echo "$t"; }
sours >/dev/null; stheirs >/dev/null
read -r ss srss < <(sours)
read -r sns snrss < <(snobs)
read -r sqs sqrss < <(stheirs)
echo
echo "sequential read of a $SIZE_MIB MiB sparse export ($((piece * 8)) MiB of data), same server and delay"
printf '%-34s %8s %12s\n' run "wall s" "peak RSS"
printf '%-34s %8s %8s KiB\n' "imagemount (block status)" "$ss" "$srss"
printf '%-34s %8s %8s KiB\n' "imagemount (block status off)" "$sns" "$snrss"
printf '%-34s %8s %8s KiB\n' "qemu-img convert -O raw" "$sqs" "$sqrss"
echo "ratio qemu-img / imagemount:            $(ratio "$sqs" "$ss")"
echo "ratio block status off / on:            $(ratio "$sns" "$ss")"
