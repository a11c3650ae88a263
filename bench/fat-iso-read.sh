#!/usr/bin/env bash
# Reads through imagemount's mount against the FUSE servers users run today, in one run:
#   vfat (FAT32, 1 GiB volume):  imagemount vs fusefat
#   ISO 9660 (Rock Ridge+Joliet): imagemount vs fuseiso   (when the ISO driver is present)
# For each: a cold sequential read of a 512 MiB file and a cold `find` + `stat` walk of 4 000
# entries, best of RUNS (default 3), caches dropped before each. Prints MiB/s, seconds, the
# ratios (ours / theirs for throughput, theirs / ours for the walk: above 1 means imagemount is
# faster) and the servers' peak RSS.
#
# usage: bench/fat-iso-read.sh [workdir]   (needs fusefat, fuseiso, dosfstools, mtools, xorriso)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d /tmp/imagemount-bench.XXXXXX)}
RUNS=${RUNS:-3}
mkdir -p "$WORK"
for tool in fusefat fuseiso mkfs.vfat mcopy xorriso; do
  command -v "$tool" >/dev/null || { echo "$tool missing: scripts/install-deps.sh installs it" >&2; exit 1; }
done
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
BIN=$(swift build -c release --show-bin-path)/imagemount

SRC=$WORK/src
if [ ! -d "$SRC" ]; then
  mkdir -p "$SRC/tree"
  head -c 512M /dev/urandom > "$SRC/big.bin"
  for d in $(seq -w 0 39); do
    mkdir -p "$SRC/tree/d$d"
    (cd "$SRC/tree/d$d" && seq -f "file%03g.txt" 0 99 | xargs -n 100 sh -c 'for f; do echo "$f" > "$f"; done' sh)
  done
fi
FAT=$WORK/fat32.img
if [ ! -f "$FAT" ]; then
  truncate -s 1G "$FAT" && mkfs.vfat -F 32 "$FAT" >/dev/null
  mcopy -s -i "$FAT" "$SRC/big.bin" "$SRC/tree" ::/
fi
ISO=$WORK/rr.iso
[ -f "$ISO" ] || xorriso -as mkisofs -quiet -R -J -o "$ISO" "$SRC" 2>/dev/null

MNT=$WORK/mnt; mkdir -p "$MNT"
cleanup() { fusermount3 -u -z "$MNT" 2>/dev/null || fusermount -u -z "$MNT" 2>/dev/null || true; }
trap cleanup EXIT
now() { date +%s.%N; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# mount_<tool> IMAGE: mounts on $MNT and sets PID to the server's pid.
mount_imagemount() { "$BIN" -a "$1" --ro --pid-file "$WORK/im.pid" "$MNT"; PID=$(cat "$WORK/im.pid"); }
mount_fusefat()    { fusefat -o ro "$1" "$MNT"; PID=$(pgrep -n -x fusefat); }
mount_fuseiso()    { fuseiso "$1" "$MNT"; PID=$(pgrep -n -x fuseiso); }
unmount_any()      { fusermount3 -u "$MNT" 2>/dev/null || fusermount -u "$MNT"; sleep 0.3; }

# measure TOOL IMAGE: prints "read_MiB/s walk_s rss_KiB" (best of RUNS).
measure() {
  local tool=$1 image=$2 best_read=0 best_walk=999999 rss=0 t0 t1 r
  for _ in $(seq "$RUNS"); do
    drop_caches; mount_$tool "$image"
    t0=$(now); cat "$MNT/big.bin" > /dev/null; t1=$(now)
    best_read=$(echo "x = 512 / ($t1 - $t0); if (x > $best_read) x else $best_read" | bc -l)
    r=$(peak_rss_kb "$PID"); [ "${r:-0}" -gt "$rss" ] && rss=$r
    unmount_any
    drop_caches; mount_$tool "$image"
    t0=$(now); find "$MNT/tree" -exec stat -c '%s %Y' {} + > /dev/null; t1=$(now)
    best_walk=$(echo "x = $t1 - $t0; if (x < $best_walk) x else $best_walk" | bc -l)
    r=$(peak_rss_kb "$PID"); [ "${r:-0}" -gt "$rss" ] && rss=$r
    unmount_any
  done
  echo "$best_read $best_walk $rss"
}

report() { # label ours theirs name
  read -r or ow orss <<< "$2"; read -r tr tw trss <<< "$3"
  printf '%-5s imagemount read %7.1f MiB/s  walk %6.3f s  RSS %6s KiB\n' "$1" "$or" "$ow" "$orss"
  printf '%-5s %-10s read %7.1f MiB/s  walk %6.3f s  RSS %6s KiB\n' "$1" "$4" "$tr" "$tw" "$trss"
  printf '%-5s ratios: read %.2fx  walk %.2fx  (imagemount vs %s; target >= 2)\n\n' "$1" \
    "$(echo "$or / $tr" | bc -l)" "$(echo "$tw / $ow" | bc -l)" "$4"
}

report vfat "$(measure imagemount "$FAT")" "$(measure fusefat "$FAT")" fusefat
if "$BIN" filesystems -a "$ISO" 2>/dev/null | grep -q . && "$BIN" ls -a "$ISO" / >/dev/null 2>&1; then
  report iso "$(measure imagemount "$ISO")" "$(measure fuseiso "$ISO")" fuseiso
else
  echo "iso: imagemount cannot open $ISO yet; not measured"
fi
