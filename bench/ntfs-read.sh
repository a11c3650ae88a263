#!/bin/bash
# NTFS reads through the FUSE mount, imagemount against ntfs-3g on the same image in one run:
# a sequential read of one large file (cat to /dev/null) and a `find -ls` walk of a tree of
# small files. "Cold" means a fresh mount for each measurement (nothing in either FUSE
# server's or the kernel's cache for that mount); the image file itself is in the host page
# cache for both sides, read once before. Each measurement runs RUNS times, the two sides
# interleaved (the machine is shared); prints the median wall times, the ratio (ntfs-3g time /
# ours: above 1 means we are faster) and the largest peak RSS (VmHWM) of each server.
#
# usage: bench/ntfs-read.sh [--file-mib MIB] [--files N] [--runs N]
#        (defaults: the issue's 1 GiB file and 50 000 files, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
FILE_MIB=1024
FILES=50000
RUNS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --file-mib) FILE_MIB=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        *) echo "ntfs-read.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done

swift build -c release --static-swift-stdlib --product imagemount >/dev/null
BIN=$(swift build -c release --static-swift-stdlib --show-bin-path)/imagemount

WORK=$(mktemp -d /tmp/imagemount-bench-ntfs.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() { fusermount3 -u -z "$MNT" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

IMG=$WORK/ntfs.img
truncate -s $((FILE_MIB + 512))M "$IMG"
mkntfs -F -Q -q -L BENCH "$IMG" >/dev/null 2>&1
ntfs-3g -o no_detach "$IMG" "$MNT" </dev/null >/dev/null 2>&1 & filler=$!
for _ in $(seq 1 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
head -c $((FILE_MIB << 20)) /dev/urandom > "$MNT/big.bin"
mkdir -p "$MNT/tree"
(cd "$MNT/tree" && for ((i = 0; i < FILES; i++)); do
    d=$((i % 100)); [ -d "d$d" ] || mkdir "d$d"; echo "file $i" > "d$d/f$i"; done)
fusermount3 -u "$MNT"; wait $filler
cat "$IMG" >/dev/null

# mount SIDE: starts the server on $MNT and sets $server to its pid.
mount_side() {
    if [ "$1" = imagemount ]; then
        "$BIN" -a "$IMG" -m /dev/sda --ro --pid-file "$WORK/pid" "$MNT" </dev/null >/dev/null 2>&1
        server=$(cat "$WORK/pid")
    else
        ntfs-3g -o ro,no_detach "$IMG" "$MNT" </dev/null >/dev/null 2>&1 & server=$!
        for _ in $(seq 1 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
    fi
}
unmount_side() {
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server/status" 2>/dev/null || echo 0)
    # The server's CPU time (user + system, in clock ticks): on a shared machine a steadier
    # figure than wall time.
    cpu=$(awk '{print $14 + $15}' "/proc/$server/stat" 2>/dev/null || echo 0)
    fusermount3 -u "$MNT"
    for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
}
# time SIDE COMMAND: one cold run; prints "seconds peak-KiB server-cpu-seconds".
timed() {
    local side=$1; shift
    mount_side "$side"
    local start end
    start=$(date +%s.%N)
    (cd "$MNT" && eval "$*") >/dev/null
    end=$(date +%s.%N)
    unmount_side
    echo "$(echo "$end - $start" | bc) $hwm $(echo "scale=2; $cpu / $(getconf CLK_TCK)" | bc)"
}

# median of the numbers on stdin
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-22s %10s %12s %6s %12s %14s\n' test "ntfs-3g s" "imagemount s" ratio "ntfs-3g RSS" "imagemount RSS"
for test in "read ${FILE_MIB} MiB:cat big.bin" "find ${FILES} files:find . -ls | wc -l"; do
    name=${test%%:*} cmd=${test#*:}
    theirs_all="" ours_all="" theirs_rss=0 ours_rss=0 theirs_cpu="" ours_cpu=""
    for ((run = 0; run < RUNS; run++)); do
        read -r t t_rss t_cpu < <(timed ntfs-3g "$cmd")
        read -r o o_rss o_cpu < <(timed imagemount "$cmd")
        theirs_all="$theirs_all $t" ours_all="$ours_all $o" theirs_cpu="$theirs_cpu $t_cpu" ours_cpu="$ours_cpu $o_cpu"
        [ "$t_rss" -gt "$theirs_rss" ] && theirs_rss=$t_rss
        [ "$o_rss" -gt "$ours_rss" ] && ours_rss=$o_rss
    done
    theirs=$(echo $theirs_all | tr ' ' '\n' | median) ours=$(echo $ours_all | tr ' ' '\n' | median)
    printf '%-22s %10.2f %12.2f %6.2f %10s KiB %10s KiB   (runs: ntfs-3g%s; imagemount%s)\n' "$name" "$theirs" "$ours" \
        "$(echo "$theirs / $ours" | bc -l)" "$theirs_rss" "$ours_rss" "$theirs_all" "$ours_all"
    tc=$(echo $theirs_cpu | tr ' ' '\n' | median) oc=$(echo $ours_cpu | tr ' ' '\n' | median)
    printf '%-22s %10.2f %12.2f %6.2f   (server CPU s, medians; runs: ntfs-3g%s; imagemount%s)\n' "  server CPU" "$tc" "$oc" \
        "$(echo "$tc / $oc" | bc -l)" "$theirs_cpu" "$ours_cpu"
done
