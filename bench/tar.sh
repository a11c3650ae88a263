#!/usr/bin/env bash
# Times `imagemount tar-out` against GNU tar on a kernel loop mount of the same partition, in
# one run, on the cat-copyout bench image (a 4000-entry tree of files up to 64 KiB):
#   imagemount tar-out -a IMAGE /tree OUT.tar
#   tar -C MNT/tree -cf OUT.tar .              (mounted once beforehand: tar alone)
#   losetup + mount -o ro + tar + umount       (what virt-tar-out does inside its appliance,
#                                               without the appliance: the local equivalent)
# and the same with -z (gzip) against tar -czf. Archives go to tmpfs.
# Prints mean times, ratios (GNU tar / imagemount: above 1 means imagemount is faster) and peak RSS.
# Usage: bench/tar.sh [workdir]   (needs hyperfine, e2fsprogs, fdisk; scripts/install-deps.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench-tar.XXXXXX)}
mkdir -p "$work"
mnt=$(mktemp -d /tmp/imagemount-bench-tar-mnt.XXXXXX)
out=$(mktemp -d /dev/shm/imagemount-bench-tar-out.XXXXXX)
loop=""
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  rmdir "$mnt" 2>/dev/null; rm -rf "$out"
  [ -z "${keep:-}" ] && rm -rf "$work"
  true
}
keep=${1:-}
trap cleanup EXIT

# IMAGEMOUNT_BIN: an imagemount already built (else a release build is made here).
bin=${IMAGEMOUNT_BIN:-}
if [ -z "$bin" ]; then
  swift build -c release --static-swift-stdlib --product imagemount >/dev/null
  bin=$(swift build -c release --show-bin-path)/imagemount
fi

img=$work/disk.img
offset=$((2048 * 512))
if [ ! -f "$img" ]; then
  src=$work/src
  mkdir -p "$src/etc" "$src/tree"
  echo bench-guest > "$src/etc/hostname"
  # The cat-copyout tree: 40 directories of 99 files, sizes from 0 to about 64 KiB.
  bench/make-tree.py small4000 "$src/tree"
  truncate -s 1G "$img"
  printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
  size_k=$(( ($(stat -c %s "$img") - offset) / 1024 ))
  mke2fs -F -q -t ext4 -E offset=$offset -d "$src" "$img" ${size_k}k
fi
entries=$(find "$work/src/tree" | wc -l)

loop=$(losetup -f --show -r -o $offset "$img")
mount -o ro,noload "$loop" "$mnt"

hf() { hyperfine --style none --warmup 3 --runs 15 --export-json "$1" "${@:2}" >/dev/null 2>&1; }
rss() { /usr/bin/time -f %M "$@" >/dev/null 2>"$work/rss.txt" || true; tail -1 "$work/rss.txt"; }
mountcycle="L=\$(losetup -f --show -r -o $offset $img) && mkdir -p $out/m && mount -o ro,noload \$L $out/m && tar -C $out/m/tree -cf $out/c.tar . ; umount $out/m; losetup -d \$L"

hf "$work/plain.json" \
  "$bin tar-out -a $img /tree $out/a.tar" \
  "tar -C $mnt/tree -cf $out/b.tar ." \
  "$mountcycle"
hf "$work/gzip.json" \
  "$bin tar-out -a $img -z /tree $out/a.tgz" \
  "tar -C $mnt/tree -czf $out/b.tgz ."

out_rss=$(rss "$bin" tar-out -a "$img" /tree "$out/a.tar")
gz_rss=$(rss "$bin" tar-out -a "$img" -z /tree "$out/a.tgz")
tar_rss=$(rss tar -C "$mnt/tree" -cf "$out/b.tar" .)
# The two archives hold the same files: GNU tar compares ours against the mount.
mkdir -p "$out/check" && tar -C "$out/check" -xf "$out/a.tar" && diff -r "$out/check" "$mnt/tree" >/dev/null \
  && same=yes || same=NO

python3 - "$work" "$entries" "$out_rss" "$gz_rss" "$tar_rss" "$same" <<'PY'
import json, sys
work, entries, out_rss, gz_rss, tar_rss, same = sys.argv[1:]
def means(name):
    return [r["mean"] for r in json.load(open(f"{work}/{name}.json"))["results"]]
p = means("plain"); g = means("gzip")
print(f"{'task (' + entries + '-entry tree)':40} {'imagemount':>11} {'GNU tar':>11} {'ratio':>8}")
print(f"{'tar-out vs tar -cf on a mounted fs':40} {p[0]*1000:9.1f}ms {p[1]*1000:9.1f}ms {p[1]/p[0]:7.2f}x")
print(f"{'tar-out vs losetup+mount+tar+umount':40} {p[0]*1000:9.1f}ms {p[2]*1000:9.1f}ms {p[2]/p[0]:7.2f}x")
print(f"{'tar-out -z vs tar -czf':40} {g[0]*1000:9.1f}ms {g[1]*1000:9.1f}ms {g[1]/g[0]:7.2f}x")
print(f"peak RSS: tar-out {int(out_rss)/1024:.1f} MiB, tar-out -z {int(gz_rss)/1024:.1f} MiB, GNU tar {int(tar_rss)/1024:.1f} MiB")
print(f"archive extracts to the mounted tree: {same}")
print("ratio = GNU tar time / imagemount time (above 1: imagemount is faster)")
PY
