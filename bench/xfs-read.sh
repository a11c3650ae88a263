#!/usr/bin/env bash
# Reads XFS through imagemount's mount against the kernel's own xfs on a loop device, in one run:
# a cold sequential read of a 1 GiB file (goal: at least 0.9x the kernel) and a cold `find` +
# `stat` walk of a 50 000-file tree (goal: within 2x the kernel), best of RUNS (default 3),
# caches dropped before each (echo 3 > /proc/sys/vm/drop_caches). Prints MiB/s, seconds, the
# ratios (ours / kernel for throughput, kernel / ours for the walk: 1 means as fast as the
# kernel) and the imagemount server's peak RSS.
#
# usage: bench/xfs-read.sh [workdir]   (root: loop mounts; xfsprogs)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d /tmp/imagemount-bench-xfs.XXXXXX)}
RUNS=${RUNS:-3}
mkdir -p "$WORK"
command -v mkfs.xfs >/dev/null || { echo "mkfs.xfs missing: scripts/install-deps.sh installs xfsprogs" >&2; exit 1; }
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
BIN=$(swift build -c release --show-bin-path)/imagemount

IMG=$WORK/xfs.img
MNT=$WORK/mnt; mkdir -p "$MNT"
cleanup() { fusermount3 -u -z "$MNT" 2>/dev/null || true; umount "$MNT" 2>/dev/null || true; }
trap cleanup EXIT
if [ ! -f "$IMG" ]; then
  truncate -s 3G "$IMG" && mkfs.xfs -q -f "$IMG"
  mount -o loop "$IMG" "$MNT"
  head -c 1G /dev/urandom > "$MNT/big.bin"
  for d in $(seq -w 0 49); do
    mkdir -p "$MNT/tree/d$d"
    (cd "$MNT/tree/d$d" && seq -f "file%04g.txt" 0 999 | xargs touch)
  done
  umount "$MNT"
fi
now() { date +%s.%N; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

mount_imagemount() { "$BIN" -a "$IMG" --ro --pid-file "$WORK/im.pid" "$MNT"; PID=$(cat "$WORK/im.pid"); }
unmount_imagemount() { fusermount3 -u "$MNT"; sleep 0.3; }
mount_kernel() { mount -o loop,ro "$IMG" "$MNT"; PID=; }
unmount_kernel() { umount "$MNT"; }

# measure WHO: prints "read_MiB/s walk_s rss_KiB" (best of RUNS).
measure() {
  local who=$1 best_read=0 best_walk=999999 rss=0 t0 t1 r
  for _ in $(seq "$RUNS"); do
    drop_caches; mount_$who
    t0=$(now); cat "$MNT/big.bin" > /dev/null; t1=$(now)
    best_read=$(echo "x = 1024 / ($t1 - $t0); if (x > $best_read) x else $best_read" | bc -l)
    if [ -n "$PID" ]; then r=$(peak_rss_kb "$PID"); [ "${r:-0}" -gt "$rss" ] && rss=$r; fi
    unmount_$who
    drop_caches; mount_$who
    t0=$(now); find "$MNT/tree" -exec stat -c '%s %Y' {} + > /dev/null; t1=$(now)
    best_walk=$(echo "x = $t1 - $t0; if (x < $best_walk) x else $best_walk" | bc -l)
    if [ -n "$PID" ]; then r=$(peak_rss_kb "$PID"); [ "${r:-0}" -gt "$rss" ] && rss=$r; fi
    unmount_$who
  done
  echo "$best_read $best_walk $rss"
}

read -r or ow orss <<< "$(measure imagemount)"
read -r kr kw _ <<< "$(measure kernel)"
printf 'xfs imagemount read %7.1f MiB/s  walk %6.3f s  RSS %6s KiB\n' "$or" "$ow" "$orss"
printf 'xfs kernel     read %7.1f MiB/s  walk %6.3f s\n' "$kr" "$kw"
printf 'xfs ratios: read %.2fx (goal >= 0.9)  walk %.2fx (goal >= 0.5)\n' \
  "$(echo "$or / $kr" | bc -l)" "$(echo "$kw / $ow" | bc -l)"
