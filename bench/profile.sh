#!/usr/bin/env bash
# Profiles the hot commands with perf, so that speed work starts from where the time goes:
#   cat      200 runs of `cat -m /dev/sda /etc/hostname` (start-up dominated)
#   copy-out of a 4000-entry tree
#   copy-in  of a 200 MB, 2630-file tree into a fresh 1 GiB ext4
#   read     a 256 MiB file through a read-only mount (the server's threads)
# For each it prints the top entries by self time (perf report --no-children, symbols, with the
# share of samples) and keeps perf.data files in the work directory for `perf report -i`.
# Usage: bench/profile.sh [workdir]   TOP=N entries per profile (default 15), ONLY="cat read"
# Needs perf (linux-perf), e2fsprogs, fdisk, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=${1:-}
work=${1:-$(mktemp -d /tmp/imagemount-profile.XXXXXX)}
mkdir -p "$work"
top=${TOP:-15}
only=${ONLY:-cat copyout copyin read}
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  mountpoint -q "$mnt" && fusermount3 -u "$mnt" 2>/dev/null || true
  [ -z "$keep" ] && rm -rf "$work" || true
}
trap cleanup EXIT

swift build -c release --static-swift-stdlib --product imagemount >/dev/null
bin=$(swift build -c release --show-bin-path)/imagemount

# A whole-disk ext4 (no partition table: -m /dev/sda) holding the copy-out tree and a big file.
img=$work/disk.img
if [ ! -f "$img" ]; then
  src=$work/src
  mkdir -p "$src/etc" "$src/big"
  echo profile-guest > "$src/etc/hostname"
  bench/make-tree.py small4000 "$src/tree"
  head -c 256M /dev/urandom > "$src/big/file"
  truncate -s 1G "$img"
  mke2fs -F -q -t ext4 -d "$src" "$img"
fi
tree=$work/intree
if [ ! -d "$tree" ]; then
  bench/make-tree.py mixed200mb "$tree"
fi

report() {
  echo "== $1: top $top by self time"
  perf report -i "$2" --stdio --no-children --sort symbol --percent-limit 0.5 2>/dev/null \
    | grep -E '^ +[0-9]' | head -n "$top" || true   # head closing the pipe early is not a failure
  echo
}

for what in $only; do
  case $what in
    cat)
      perf record -q -F 4999 -o "$work/cat.data" -- \
        sh -c "for i in \$(seq 200); do $bin cat -a $img -m /dev/sda /etc/hostname >/dev/null; done" 2>/dev/null
      report "cat -m (200 runs)" "$work/cat.data" ;;
    copyout)
      rm -rf "$work/out"; mkdir -p "$work/out"
      perf record -q -F 4999 -o "$work/copyout.data" -- \
        "$bin" copy-out -a "$img" -m /dev/sda /tree "$work/out" 2>/dev/null
      report "copy-out 4000 entries" "$work/copyout.data" ;;
    copyin)
      truncate -s 0 "$work/in.img"; truncate -s 1G "$work/in.img"
      mke2fs -F -q -t ext4 "$work/in.img"
      perf record -q -F 4999 -o "$work/copyin.data" -- \
        "$bin" copy-in -a "$work/in.img" "$tree" / 2>/dev/null
      e2fsck -fn "$work/in.img" >/dev/null
      report "copy-in 200 MB" "$work/copyin.data" ;;
    read)
      "$bin" -a "$img" -m /dev/sda --ro "$mnt"
      pid=$(pgrep -n -f "imagemount mount .*-a $img -m /dev/sda --ro $mnt")   # the re-executed server
      sync; echo 3 > /proc/sys/vm/drop_caches
      perf record -q -F 4999 -p "$pid" -o "$work/read.data" -- \
        sh -c "cat $mnt/big/file >/dev/null" 2>/dev/null
      "$bin" unmount "$mnt"
      report "mount server, 256 MiB sequential read" "$work/read.data" ;;
  esac
done
echo "perf.data files in $work (kept when a workdir is given)"
