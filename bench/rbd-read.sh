#!/bin/bash
# Times a sequential read of a whole raw RBD image (SIZE_MIB, 1 GiB by default, random data, so
# every object exists) in a one-node Ceph cluster started for the run (Tests/Scripts/ceph-cluster.sh:
# ceph-mon, ceph-mgr, one memstore ceph-osd on 127.0.0.1):
#   ours        imagemount's engine as it runs by default (the qcow2-bench tool: ImageOpener on
#               rbd:rbd/bench, 4 MiB reads, each split into 256 KiB rbd_aio_reads with up to 16
#               in flight; no read-ahead, which is off by default for RBD: RBDSettings says why)
#   ours-ra     with sequential read-ahead (IMAGEMOUNT_RBD_READAHEAD=16: up to 16 MiB of 256 KiB
#               requests in flight ahead of the reader)
#   ours-1m     1 MiB requests instead of 256 KiB (IMAGEMOUNT_RBD_REQUEST=1024): fewer requests
#               and less of librbd's per-request work, at a higher peak RSS
#   ours-1      one request at a time (IMAGEMOUNT_RBD_IN_FLIGHT=1)
#   rbd export  `rbd export rbd/bench -` to /dev/null (Ceph's own tool)
#   qemu-img    qemu-img convert -f raw -O raw rbd:rbd/bench to a file on tmpfs (qemu-block-extra's
#               rbd driver; skipped, and said so, when it is not installed)
# Prints wall times, ratios (theirs / ours: above 1 means we are faster; ours-1 / ours: what
# pipelining buys) and peak RSS of each. One warm-up of each first. Every client finds the
# cluster through CEPH_CONF (the cluster's ceph.conf names its keyring).
#
# usage: bench/rbd-read.sh [--size MIB] [--bin PATH-TO-qcow2-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=1024
BIN=
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE_MIB=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        *) echo "rbd-read.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$BIN" ]; then
    swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
    BIN=$(swift build -c release --show-bin-path)/qcow2-bench
fi

WORK=$(mktemp -d /dev/shm/imagemount-bench-rbd.XXXXXX 2>/dev/null || mktemp -d /tmp/imagemount-bench-rbd.XXXXXX)
cleanup() {
    Tests/Scripts/ceph-cluster.sh stop "$WORK/ceph" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start=$(date +%s.%N)
Tests/Scripts/ceph-cluster.sh start "$WORK/ceph"
started=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
export CEPH_CONF=$WORK/ceph/ceph.conf

head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src.raw"
rbd import --no-progress "$WORK/src.raw" rbd/bench
rm -f "$WORK/src.raw"
NAME=rbd:rbd/bench

measure() {
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    cat "$WORK/time"
}
ours() { measure "$BIN" --format raw "$NAME"; }
ours1() { measure env IMAGEMOUNT_RBD_IN_FLIGHT=1 "$BIN" --format raw "$NAME"; }
ours1m() { measure env IMAGEMOUNT_RBD_REQUEST=1024 "$BIN" --format raw "$NAME"; }
oursra() { measure env IMAGEMOUNT_RBD_READAHEAD=16 "$BIN" --format raw "$NAME"; }
export_() { measure rbd export --no-progress rbd/bench -; }
have_qemu_rbd=0
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so ] && have_qemu_rbd=1
theirs() { local t; t=$(measure qemu-img convert -f raw -O raw "$NAME" "$WORK/out.raw"); rm -f "$WORK/out.raw"; echo "$t"; }

ours >/dev/null; ours1 >/dev/null; export_ >/dev/null
[ $have_qemu_rbd = 1 ] && theirs >/dev/null
read -r ms mrss < <(ours)
read -r mras mrarss < <(oursra)
read -r m1s m1rss < <(ours1)
read -r mms mmrss < <(ours1m)
read -r es erss < <(export_)
if [ $have_qemu_rbd = 1 ]; then read -r qs qrss < <(theirs); fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "sequential read of a $SIZE_MIB MiB RBD image, one-node Ceph (memstore OSD) on 127.0.0.1; cluster started in ${started} s"
printf '%-34s %8s %12s\n' run "wall s" "peak RSS"
printf '%-34s %8s %8s KiB\n' "imagemount (default)" "$ms" "$mrss"
printf '%-34s %8s %8s KiB\n' "imagemount (read-ahead 16 MiB)" "$mras" "$mrarss"
printf '%-34s %8s %8s KiB\n' "imagemount (1 MiB requests)" "$mms" "$mmrss"
printf '%-34s %8s %8s KiB\n' "imagemount (1 in flight)" "$m1s" "$m1rss"
printf '%-34s %8s %8s KiB\n' "rbd export" "$es" "$erss"
if [ $have_qemu_rbd = 1 ]; then
    printf '%-34s %8s %8s KiB\n' "qemu-img convert -O raw" "$qs" "$qrss"
else
    echo "qemu-img convert: skipped (no rbd driver: apt-get install qemu-block-extra)"
fi
echo "ratio rbd export / imagemount:          $(ratio "$es" "$ms")"
[ $have_qemu_rbd = 1 ] && echo "ratio qemu-img / imagemount:            $(ratio "$qs" "$ms")"
echo "ratio rbd export / imagemount 1 MiB:    $(ratio "$es" "$mms")"
echo "ratio 1-in-flight / 16-in-flight:       $(ratio "$m1s" "$ms")"
echo "ratio default / read-ahead:             $(ratio "$ms" "$mras")"
