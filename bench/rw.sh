#!/usr/bin/env bash
# Times imagemount's writing against fuse2fs -o rw (e2fsprogs) on copies of the same image, in one run:
#   edit -e 's/^old/new/' /etc/hostname   vs  fuse2fs mount + perl -pi -e 's/^old/new/' + unmount
#   copy-in of a 200 MB tree               vs  fuse2fs mount + cp -a + unmount
#   (and, for reference, imagemount --rw mount + cp -a + unmount: the FUSE path against fuse2fs's,
#    and the kernel's ext4 on a loop device + cp -a + sync + umount)
# Every run starts from a fresh copy of the template and ends with the image closed (the
# server has exited), so each time includes writing back bitmaps and the superblock.
# Prints mean times and ratios (fuse2fs time / imagemount time: above 1 means imagemount is faster).
#
# The template is raw. FORMAT=qcow2 runs imagemount on a qcow2 conversion of the template,
# FORMAT=qcow2-luks on a LUKS-encrypted one (aes-xts-plain64, key from a file; iter-time=10 keeps
# the unlock short); fuse2fs, which reads only raw, keeps the raw copy.
# Usage: bench/rw.sh [workdir]   (needs hyperfine, fuse2fs, perl; SCRATCH=path to pick the build dir)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench-rw.XXXXXX)}
mkdir -p "$work"
trap '[ -z "${1:-}" ] && rm -rf "$work"' EXIT
format=${FORMAT:-raw}

swift build -c release --static-swift-stdlib ${SCRATCH:+--scratch-path "$SCRATCH"} --product imagemount >/dev/null
bin=$(swift build -c release ${SCRATCH:+--scratch-path "$SCRATCH"} --show-bin-path)/imagemount

template=$work/template.img
if [ ! -f "$template" ]; then
  root=$work/root
  mkdir -p "$root/etc"
  printf 'oldhost\n' > "$root/etc/hostname"
  truncate -s 1G "$template"
  mke2fs -F -q -t ext4 -d "$root" "$template"
fi
tree=$work/tree
if [ ! -d "$tree" ]; then
  # 200 MB in 2630 files over 26 directories: a few large files, many small ones, like /usr.
  bench/make-tree.py mixed200mb "$tree"
fi
tree_mb=$(du -sm --apparent-size "$tree" | cut -f1)
files=$(find "$tree" -type f | wc -l)

img=$work/img
mnt=$work/mnt
mkdir -p "$mnt"
fresh="cp --sparse=always $template $img.raw"
key=""
qemu_name=$img.qcow2
if [ "$format" = qcow2 ]; then
  fresh="$fresh && qemu-img convert -O qcow2 $img.raw $img.qcow2"
  ours=$img.qcow2
elif [ "$format" = qcow2-luks ]; then
  printf 'bench passphrase' > "$work/key"
  secret="--object secret,id=s,file=$work/key"
  fresh="$fresh && qemu-img convert $secret -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10 $img.raw $img.qcow2"
  ours="$img.qcow2 --key all:file:$work/key"
  qemu_name="$secret --image-opts driver=qcow2,file.filename=$img.qcow2,encrypt.key-secret=s"
else
  ours=$img.raw
fi

# fuse2fs in the foreground, so that waiting for it means its last flush is done.
cat > "$work/fuse2fs.sh" <<EOF
#!/usr/bin/env bash
set -e
fuse2fs -f -o rw,fakeroot $img.raw $mnt >/dev/null 2>&1 &
pid=\$!
for _ in \$(seq 1 200); do mountpoint -q $mnt && break; sleep 0.01; done
case "\$1" in
  edit) perl -pi -e 's/^old/new/' $mnt/etc/hostname ;;
  copy) cp -a $tree $mnt/ ;;
esac
fusermount -u $mnt
wait \$pid
EOF
cat > "$work/mount.sh" <<EOF
#!/usr/bin/env bash
set -e
$bin -a $ours --rw $mnt
cp -a $tree $mnt/
$bin unmount $mnt
EOF
# The kernel's ext4 on a loop device, for reference: cp -a, sync, umount (the data is on the image).
cat > "$work/kernel.sh" <<EOF
#!/usr/bin/env bash
set -e
mount -o loop $img.raw $mnt
cp -a $tree $mnt/
sync
umount $mnt
EOF
chmod +x "$work/fuse2fs.sh" "$work/mount.sh" "$work/kernel.sh"

hf() { hyperfine --style none --export-json "$1" "${@:2}" >/dev/null 2>&1; }
hf "$work/edit.json" --runs 20 \
  --prepare "$fresh" "$bin edit -a $ours /etc/hostname -e 's/^old/new/'" \
  --prepare "$fresh" "$work/fuse2fs.sh edit"
hf "$work/copy.json" --runs 3 \
  --prepare "$fresh" "$bin copy-in -a $ours $tree /" \
  --prepare "$fresh" "$work/fuse2fs.sh copy" \
  --prepare "$fresh" "$work/mount.sh" \
  --prepare "$fresh" "$work/kernel.sh"

# The results must be real: imagemount's --rw mount copy is checked by e2fsck (run it once more,
# since the kernel's run came last).
eval "$fresh"
"$work/mount.sh"
if [ "$format" = raw ]; then
  e2fsck -fn "$img.raw" >/dev/null
else
  qemu-img check -q $qemu_name
  qemu-img convert $qemu_name -O raw "$work/check.raw" && e2fsck -fn "$work/check.raw" >/dev/null && rm -f "$work/check.raw"
fi

python3 - "$work" "$tree_mb" "$files" "$format" <<'PY'
import json, sys
work, mb, files, fmt = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
e = [r["mean"] for r in json.load(open(f"{work}/edit.json"))["results"]]
c = [r["mean"] for r in json.load(open(f"{work}/copy.json"))["results"]]
print(f"image: {fmt} (fuse2fs: raw)")
print(f"{'task':40} {'imagemount':>12} {'fuse2fs':>12} {'ratio':>8}")
print(f"{'edit -e s/^old/new/ /etc/hostname':40} {e[0]*1000:10.1f}ms {e[1]*1000:10.1f}ms {e[1]/e[0]:7.2f}x")
print(f"{'copy-in ' + mb + ' MB, ' + files + ' files':40} {c[0]:11.2f}s {c[1]:11.2f}s {c[1]/c[0]:7.2f}x")
print(f"{'--rw mount + cp -a (same tree)':40} {c[2]:11.2f}s {c[1]:11.2f}s {c[1]/c[2]:7.2f}x")
print(f"{'kernel ext4 (loop) cp -a + sync':40} {c[3]:11.2f}s {'':>12} {c[3]/c[2]:7.2f}x (kernel time / --rw mount time)")
print("ratio = fuse2fs time / imagemount time (above 1: imagemount is faster)")
PY
