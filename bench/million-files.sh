#!/usr/bin/env bash
# A 1 000 000-file ext4 filesystem, mounted read-only by the kernel (loop device) and by
# imagemount (FUSE), side by side in one run. For each: the time until the mount is ready,
# a `find` walk of every name (`find MNT | wc -l`), `du -s` (a stat of every inode), each from
# cold caches (drop_caches before every mount), and the mount server's peak RSS (VmHWM, taken
# after each `du -s`). Runs alternate kernel and imagemount; prints medians with their spread and
# the ratios imagemount/kernel (the scale issue's target: within 2x for each, RSS under 64 MiB),
# and checks that both walks count the same names.
#   tree: 1000 directories of 1000 empty files each, plus the root: mke2fs -d from tmpfs
# Usage: bench/million-files.sh [workdir]   (IMAGEMOUNT_BIN: a built imagemount, else a
#        release build; FILES: default 1000000; RUNS: default 3, the median of RUNS is kept)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench-million.XXXXXX)}
keep=${1:-}
mkdir -p "$work"
files=${FILES:-1000000}
runs=${RUNS:-3}
MNT=$work/mnt; mkdir -p "$MNT"
cleanup() {
  umount "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
  [ -z "$keep" ] && rm -rf "$work"
  true
}
trap cleanup EXIT

bin=${IMAGEMOUNT_BIN:-}
if [ -z "$bin" ]; then
  swift build -c release --static-swift-stdlib --product imagemount >/dev/null
  bin=$(swift build -c release --show-bin-path)/imagemount
fi

IMG=$work/million.img
if [ ! -f "$IMG" ]; then
  src=$(mktemp -d /dev/shm/imagemount-million-src.XXXXXX)
  echo "building $IMG ($files files) ..." >&2
  python3 - "$src" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
per = 1000
for d in range((n + per - 1) // per):
    path = os.path.join(root, "d%04d" % d)
    os.mkdir(path)
    for i in range(min(per, n - d * per)):
        os.close(os.open(os.path.join(path, "f%04d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
  truncate -s 8G "$IMG"
  mke2fs -q -F -t ext4 -b 4096 -I 256 -N $((files + files / 20 + 4096)) -d "$src" "$IMG"
  rm -rf "$src"
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
mount_kernel()     { mount -t ext4 -o ro,loop,noload "$IMG" "$MNT"; }
mount_imagemount() { "$bin" -a "$IMG" --ro --pid-file "$work/im.pid" "$MNT"; }
unmount_tool()     { if [ "$1" = imagemount ]; then "$bin" unmount "$MNT"; else umount "$MNT"; fi; sleep 0.3; }

# Interleaved: each run times the kernel, then imagemount, so load from elsewhere on a shared
# machine falls on both; medians over the runs, with the spread.
declare -A READY WALK DU NAMES
rss=0
for run in $(seq "$runs"); do
  for tool in kernel imagemount; do
    cold; t=$(now); mount_$tool; READY[$tool]+=" $(since "$t")"
    t=$(now); NAMES[$tool]=$(find "$MNT" | wc -l); WALK[$tool]+=" $(since "$t")"
    unmount_tool $tool
    cold; mount_$tool
    t=$(now); du -s "$MNT" >/dev/null; DU[$tool]+=" $(since "$t")"
    if [ $tool = imagemount ]; then
      r=$(awk '/VmHWM/ { print $2 }' "/proc/$(cat "$work/im.pid")/status")
      [ "$r" -gt "$rss" ] && rss=$r
    fi
    unmount_tool $tool
  done
  echo "run $run: kernel ready${READY[kernel]##* } find${WALK[kernel]##* } du${DU[kernel]##* }; imagemount ready${READY[imagemount]##* } find${WALK[imagemount]##* } du${DU[imagemount]##* }" >&2
done
for tool in kernel imagemount; do
  printf '%-11s ready %7.3f s (%s)   find %7.3f s (%s; %s names)   du -s %7.3f s (%s)\n' "$tool" \
    "$(median <<<"${READY[$tool]}")" "$(spread <<<"${READY[$tool]}")" "$(median <<<"${WALK[$tool]}")" \
    "$(spread <<<"${WALK[$tool]}")" "${NAMES[$tool]}" "$(median <<<"${DU[$tool]}")" "$(spread <<<"${DU[$tool]}")"
done
[ "${NAMES[kernel]}" = "${NAMES[imagemount]}" ] || { echo "the walks differ: ${NAMES[kernel]} and ${NAMES[imagemount]} names" >&2; exit 1; }
ratio() { awk -v a="$(median <<<"$1")" -v b="$(median <<<"$2")" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "imagemount/kernel, medians of $runs (target: at most 2.00 each): ready $(ratio "${READY[imagemount]}" "${READY[kernel]}")" \
     "  find $(ratio "${WALK[imagemount]}" "${WALK[kernel]}")   du -s $(ratio "${DU[imagemount]}" "${DU[kernel]}")"
echo "mount server peak RSS: $((rss / 1024)) MiB (target: under 64 MiB)"
