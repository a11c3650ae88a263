#!/usr/bin/env bash
# Times imagemount against debugfs on one partitioned raw image, in one run:
#   cat of a small file      vs  debugfs -R 'cat /etc/hostname' 'IMAGE?offset=N'
#   copy-out of a 4000-entry tree  vs  debugfs -R 'rdump /tree OUT' 'IMAGE?offset=N'
# Prints mean times, ratios (debugfs / imagemount: above 1 means imagemount is faster) and peak RSS.
# Usage: bench/cat-copyout.sh [workdir]   (needs hyperfine, e2fsprogs, fdisk; scripts/install-deps.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench.XXXXXX)}
mkdir -p "$work"
trap '[ -z "${1:-}" ] && rm -rf "$work"; rm -rf "${out:-}"' EXIT

swift build -c release --static-swift-stdlib --product imagemount >/dev/null
bin=$(swift build -c release --show-bin-path)/imagemount

img=$work/disk.img
offset=$((2048 * 512))
if [ ! -f "$img" ]; then
  src=$work/src
  mkdir -p "$src/etc" "$src/tree"
  echo bench-guest > "$src/etc/hostname"
  # 4000 entries: 40 directories of 99 files, sizes from 0 to about 64 KiB.
  bench/make-tree.py small4000 "$src/tree"
  truncate -s 1G "$img"
  printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
  size_k=$(( ($(stat -c %s "$img") - offset) / 1024 ))
  mke2fs -F -q -t ext4 -E offset=$offset -d "$src" "$img" ${size_k}k
fi
entries=$(find "$work/src/tree" | wc -l)

hf() { hyperfine --style none --warmup 3 --export-json "$1" "${@:2}" >/dev/null 2>&1; }
mean() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["mean"])' "$@"; }
rss() { /usr/bin/time -f %M "$@" >/dev/null 2>"$work/rss.txt" || true; tail -1 "$work/rss.txt"; }

hf "$work/cat.json" --runs 50 \
  "$bin cat -a $img /etc/hostname" \
  "debugfs -R 'cat /etc/hostname' '$img?offset=$offset'"
# Output on tmpfs: the host filesystem's journal would otherwise dominate both tools' times.
out=$(mktemp -d /dev/shm/imagemount-bench-out.XXXXXX)
hf "$work/copy.json" --runs 10 \
  --prepare "rm -rf $out && mkdir -p $out" "$bin copy-out -a $img /tree $out" \
  --prepare "rm -rf $out && mkdir -p $out" "debugfs -R 'rdump /tree $out' '$img?offset=$offset'"

rm -rf "$out" && mkdir -p "$out"
cat_rss=$(rss "$bin" cat -a "$img" /etc/hostname)
copy_rss=$(rss "$bin" copy-out -a "$img" /tree "$out")

python3 - "$work" "$entries" "$cat_rss" "$copy_rss" <<'PY'
import json, sys
work, entries, cat_rss, copy_rss = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def means(name):
    r = json.load(open(f"{work}/{name}.json"))["results"]
    return r[0]["mean"], r[1]["mean"]
ic, dc = means("cat")
io, do = means("copy")
print(f"{'task':34} {'imagemount':>12} {'debugfs':>12} {'ratio':>8}")
print(f"{'cat small file':34} {ic*1000:10.2f}ms {dc*1000:10.2f}ms {dc/ic:7.2f}x")
print(f"{'copy-out ' + entries + '-entry tree':34} {io*1000:10.1f}ms {do*1000:10.1f}ms {do/io:7.2f}x")
print(f"peak RSS: cat {int(cat_rss)/1024:.1f} MiB, copy-out {int(copy_rss)/1024:.1f} MiB")
print("ratio = debugfs time / imagemount time (above 1: imagemount is faster)")
PY
