#!/usr/bin/env bash
# Benchmark the FUSE mount against fuse2fs and the kernel's ext4 (loop mount, the ceiling):
#   1. sequential read of a 1 GiB file (cold page cache: caches dropped before each run),
#   2. find + stat over a 10 000-file tree (fresh mount each run, so nothing is cached).
# Prints MiB/s and seconds, the ratios, and the peak RSS of each FUSE server.
# Usage: bench/mount-read.sh [WORKDIR]   (root; builds imagemount in release mode)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d /tmp/imagemount-bench.XXXXXX)}
mkdir -p "$WORK"
RUNS=${RUNS:-3}

command -v fuse2fs >/dev/null || { echo "fuse2fs missing: apt-get install fuse2fs" >&2; exit 1; }
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
BIN=$(swift build -c release --show-bin-path)/imagemount

IMG=$WORK/bench.img
if [ ! -f "$IMG" ]; then
  echo "building $IMG ..." >&2
  SRC=$WORK/src
  rm -rf "$SRC"; mkdir -p "$SRC/tree"
  head -c 1G /dev/urandom > "$SRC/big.bin"
  for d in $(seq -w 0 99); do
    mkdir -p "$SRC/tree/d$d"
    (cd "$SRC/tree/d$d" && seq -f "f%03g" 0 99 | xargs -n 100 sh -c 'for f; do echo "$f" > "$f"; done' sh)
  done
  mke2fs -q -F -t ext4 -b 4096 -I 256 -d "$SRC" "$IMG" 2G
  rm -rf "$SRC"
fi

MNT=$WORK/mnt; mkdir -p "$MNT"
cleanup() { umount "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true; }
trap cleanup EXIT

mount_kernel()    { mount -t ext4 -o ro,loop,noload "$IMG" "$MNT"; }
mount_fuse2fs()   { fuse2fs -o ro,fakeroot "$IMG" "$MNT" >/dev/null 2>&1; }
mount_imagemount(){ "$BIN" -a "$IMG" --pid-file "$WORK/im.pid" "$MNT"; }
unmount_any()     { if [ "$1" = imagemount ]; then "$BIN" unmount "$MNT"; else umount "$MNT"; fi; sleep 0.2; }
server_pid() {
  case $1 in
    imagemount) cat "$WORK/im.pid" ;;
    fuse2fs) pgrep -n -x fuse2fs ;;
    *) echo "" ;;
  esac
}
peak_rss_kb() { [ -n "$1" ] && awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

now() { date +%s.%N; }
declare -A READ WALK RSS
for tool in kernel fuse2fs imagemount; do
  best_read=0; best_walk=999999; rss=0
  for run in $(seq "$RUNS"); do
    sync; echo 3 > /proc/sys/vm/drop_caches
    mount_$tool
    t0=$(now); cat "$MNT/big.bin" > /dev/null; t1=$(now)
    mibs=$(echo "1024 / ($t1 - $t0)" | bc -l)
    pid=$(server_pid $tool); r=$(peak_rss_kb "$pid"); [ "${r:-0}" -gt "$rss" ] && rss=$r
    unmount_any $tool
    best_read=$(echo "if ($mibs > $best_read) $mibs else $best_read" | bc -l)

    sync; echo 3 > /proc/sys/vm/drop_caches
    mount_$tool
    t0=$(now); find "$MNT/tree" -exec stat -c '%i %s %Y' {} + > /dev/null; t1=$(now)
    secs=$(echo "$t1 - $t0" | bc -l)
    pid=$(server_pid $tool); r=$(peak_rss_kb "$pid"); [ "${r:-0}" -gt "$rss" ] && rss=$r
    unmount_any $tool
    best_walk=$(echo "if ($secs < $best_walk) $secs else $best_walk" | bc -l)
  done
  READ[$tool]=$best_read; WALK[$tool]=$best_walk; RSS[$tool]=$rss
  printf '%-11s read %8.1f MiB/s   walk %6.3f s   peak RSS %s KiB\n' "$tool" "$best_read" "$best_walk" "$rss"
done

echo
printf 'read:  imagemount/kernel %.2f   imagemount/fuse2fs %.2f   (target: >= 0.5 of kernel, > fuse2fs)\n' \
  "$(echo "${READ[imagemount]} / ${READ[kernel]}" | bc -l)" "$(echo "${READ[imagemount]} / ${READ[fuse2fs]}" | bc -l)"
printf 'walk:  fuse2fs/imagemount %.2f (speed-up)   imagemount/kernel time %.2f   (target: faster than fuse2fs)\n' \
  "$(echo "${WALK[fuse2fs]} / ${WALK[imagemount]}" | bc -l)" "$(echo "${WALK[imagemount]} / ${WALK[kernel]}" | bc -l)"
