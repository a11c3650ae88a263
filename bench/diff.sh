#!/usr/bin/env bash
# Times `imagemount diff` on a template and a clone, fast path against full walk, in one run:
#   template: a raw ext4 image made with mke2fs -d from a 50 000-file tree (1000 directories)
#   clone:    qemu-img create -f qcow2 -b template -F raw, then 10 files changed with
#             `imagemount edit -e` (each in another directory)
#   imagemount diff -a template -A clone            (fast: the overlay's allocation map)
#   imagemount diff -a template -A clone --no-fast  (the full walk of both trees)
# Checks both print the same, then prints median times, the ratio (full / fast) and peak RSS.
# Usage: bench/diff.sh [workdir]   (IMAGEMOUNT_BIN: a built imagemount, else a release build;
#                                   FILES: the tree's size, default 50000; RUNS: default 11)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench-diff.XXXXXX)}
keep=${1:-}
mkdir -p "$work"
cleanup() { [ -z "$keep" ] && rm -rf "$work"; true; }
trap cleanup EXIT
files=${FILES:-50000}
runs=${RUNS:-11}

bin=${IMAGEMOUNT_BIN:-}
if [ -z "$bin" ]; then
  swift build -c release --static-swift-stdlib --product imagemount >/dev/null
  bin=$(swift build -c release --show-bin-path)/imagemount
fi

template=$work/template.img clone=$work/clone.qcow2
if [ ! -f "$template" ]; then
  src=$work/src
  mkdir -p "$src"
  # 1000 directories of 50 files each (for the default 50 000), a few bytes per file.
  python3 - "$src" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 1000))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "w") as f:
        f.write("file %d\n" % i)
PY
  truncate -s 1G "$template"
  mke2fs -q -F -t ext4 -N $((files + 4096)) -d "$src" "$template"
  rm -rf "$src"
fi
rm -f "$clone"
qemu-img create -q -f qcow2 -b "$template" -F raw "$clone"
for i in $(seq 0 9); do
  "$bin" edit --format=qcow2 -a "$clone" "/d$(printf %03d $((i * 97)))/f$(printf %05d $((i * 97)))" -e 's/file/changed/'
done

fast=("$bin" diff --format=raw -a "$template" --format=qcow2 -A "$clone")
full=("${fast[@]}" --no-fast)
"${fast[@]}" > "$work/fast.out"
"${full[@]}" > "$work/full.out"
cmp "$work/fast.out" "$work/full.out" || { echo "fast and full outputs differ" >&2; exit 1; }
echo "output: $(grep -c '^= ' "$work/fast.out") changed files, identical for both walks"

# RUNS runs of each, interleaved (fast, full, fast, …) after one warm-up of each, so that a
# slow spell of this shared VM falls on both; the figures are medians, in milliseconds.
"${fast[@]}" >/dev/null; "${full[@]}" >/dev/null
now() { date +%s%N; }
fast_ns=() full_ns=()
for _ in $(seq "$runs"); do
  t0=$(now); "${fast[@]}" >/dev/null; t1=$(now); "${full[@]}" >/dev/null; t2=$(now)
  fast_ns+=($((t1 - t0))); full_ns+=($((t2 - t1)))
done
median_ms() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m / 1e6 }'; }
rss_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }

fast_ms=$(median_ms "${fast_ns[@]}")
full_ms=$(median_ms "${full_ns[@]}")
echo "files in tree:     $files"
echo "fast diff:         ${fast_ms} ms   peak RSS $(rss_kb "${fast[@]}") KiB   (median of $runs)"
echo "full-walk diff:    ${full_ms} ms   peak RSS $(rss_kb "${full[@]}") KiB"
awk -v a="$full_ms" -v b="$fast_ms" 'BEGIN { printf "ratio full/fast:   %.1fx\n", (b > 0 ? a / b : 0) }'
