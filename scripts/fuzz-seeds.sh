#!/usr/bin/env bash
# Seed corpora for the fuzz targets (fuzz/README.md), made the way the tests make their images:
# mke2fs -d, debugfs journal writes, qemu-img/qemu-io, sfdisk/sgdisk, pvcreate/vgcreate/lvcreate
# (on loop devices, with a private LVM config), cryptsetup luksFormat with the lowest costs.
# Images go through fuzz/tools/sparse.py, so a seed holds only the non-zero sectors.
#   scripts/fuzz-seeds.sh [OUTDIR]    (default fuzz/corpus-generated; OUTDIR/TARGET/NAME)
# The small seeds are committed in fuzz/corpus; the big ones (LUKS key material) are made here
# at run time. Needs root for the LVM part (losetup); it is skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-fuzz/corpus-generated}
mkdir -p "$out"; out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/imagemount-fuzz-seeds.XXXXXX)
loops=()
cleanup() { for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
sparse() { mkdir -p "$out/$1"; python3 "$root/fuzz/tools/sparse.py" "$2" "$out/$1/$3"; }
raw() { mkdir -p "$out/$1"; cp "$2" "$out/$1/$3"; }

# A small tree: files, a hole, fast and slow symlinks, a subdirectory, a hard link, xattrs.
mkdir -p tree/dir/sub
printf 'hello\n' > tree/hello.txt
head -c 1500 /dev/urandom > tree/dir/random.bin
truncate -s 70000 tree/dir/sparse.bin; printf 'end' >> tree/dir/sparse.bin
ln -s hello.txt tree/fast-link
ln -s "$(printf 'x%.0s' {1..100})/target" tree/slow-link
ln tree/hello.txt tree/dir/sub/hardlink
setfattr -n user.fuzz -v seed tree/hello.txt 2>/dev/null || true

# ext: ext2, ext3, ext4 (extents, metadata_csum, inline_data), 1 KiB blocks to stay small.
ext() {  # NAME SIZE mke2fs-options...
    local name=$1 size=$2; shift 2
    rm -f "$name"; truncate -s "$size" "$name"
    mke2fs -q -F -b 1024 -N 64 -d tree "$@" "$name" >/dev/null
    sparse ext "$name" "$name"
}
ext ext2 512K -t ext2
ext ext2-noxattr 512K -t ext2 -O ^ext_attr
ext ext3 4M -t ext3 -J size=1
ext ext4 512K -t ext4 -O ^has_journal
ext ext4-inline 512K -t ext4 -O ^has_journal,inline_data
ext ext4-64bit 512K -t ext4 -O ^has_journal,64bit,metadata_csum
sparse volume-probe ext2 ext2

# journal: a journalled ext4 whose log holds transactions debugfs wrote (needs_recovery set).
journal() {  # NAME mke2fs-options...
    local name=$1; shift
    rm -f "$name"; truncate -s 4M "$name"
    mke2fs -q -F -b 1024 -N 64 -d tree -J size=1 "$@" "$name" >/dev/null
    head -c 1024 /dev/zero | tr '\0' 'a' > n1; head -c 2048 /dev/zero | tr '\0' 'b' > n2
    printf 'jo\njw -b 300 %s\njw -b 301,302 %s\njw -r 302 /dev/null\njc\njo\njw -b 300 %s\njc\n' n1 n2 n2 > script
    debugfs -w -f script "$name" >/dev/null 2>&1
    sparse journal "$name" "$name"
    sparse ext "$name" "$name-dirty"
}
journal jbd2-csum3 -t ext4 -O metadata_csum
journal jbd2-v2 -t ext4 -O ^metadata_csum
journal jbd2-64bit -t ext4 -O 64bit,metadata_csum
journal jbd2-ext3 -t ext3

# vfat: FAT12, FAT16, a small FAT32 (mkfs.fat warns; the kernel and we go by the FAT size
# fields) and a 1440 KiB floppy, filled by mcopy with long, short and mixed-case names.
mkdir -p fat/sub/deeper
printf 'hello\n' > fat/readme.txt; printf 'up\n' > fat/UPPER.TXT; printf 'x\n' > "fat/A long file name.text"
head -c 5000 /dev/urandom > fat/sub/random.bin; : > fat/sub/deeper/zero.dat
vfat() {  # NAME SIZE fill|empty mkfs.vfat-options...
    local name=$1 size=$2 fill=$3; shift 3
    rm -f "$name"; truncate -s "$size" "$name"
    mkfs.vfat "$@" "$name" >/dev/null 2>&1
    [ "$fill" = fill ] && MTOOLS_SKIP_CHECK=1 mcopy -s -i "$name" fat/* ::/
    sparse vfat "$name" "$name"
}
vfat fat12 1M fill -F 12 -n FUZZ12
vfat fat16 4M fill -F 16 -s 1
# mtools picks the FAT type by cluster count and finds no root directory in a FAT32 this small
# (a FuzzDevice holds at most 16 MiB): this one stays empty, the harness's writes fill it.
vfat fat32 8M empty -F 32 -s 1
rm -f floppy; mkfs.fat -C floppy 1440 >/dev/null; MTOOLS_SKIP_CHECK=1 mcopy -s -i floppy fat/* ::/
sparse vfat floppy floppy

# qcow2: versions, cluster sizes, extended L2, zlib and zstd compression, snapshots, a backing file.
qcow() {  # NAME qemu-img-create-options... (then data written with qemu-io)
    local name=$1; shift
    rm -f "$name"; qemu-img create -q -f qcow2 "$@" "$name" 4M
    qemu-io -f qcow2 -c 'write -P 0x11 0 8k' -c 'write -z 64k 4k' -c 'write -c -P 0x22 1M 64k' "$name" >/dev/null 2>&1 \
        || qemu-io -f qcow2 -c 'write -P 0x11 0 8k' "$name" >/dev/null
    sparse qcow2 "$name" "$name"
}
qcow v3-4k -o cluster_size=4096
qcow v2-4k -o compat=0.10,cluster_size=4096
qcow v3-512 -o cluster_size=512
qcow l2ext -o cluster_size=16384,extended_l2=on
qcow zstd -o cluster_size=4096,compression_type=zstd
qcow refcount1 -o cluster_size=4096,refcount_bits=1
qcow lazy -o cluster_size=4096,lazy_refcounts=on
qemu-img snapshot -c snap1 v3-4k
qemu-io -f qcow2 -c 'write -P 0x33 4k 4k' v3-4k >/dev/null
qemu-img snapshot -c snap2 v3-4k
sparse qcow2 v3-4k snapshots
truncate -s 1M base.raw
qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.raw -F raw overlay 1M
qemu-io -f qcow2 -c 'write -P 0x44 4k 4k' overlay >/dev/null
sparse qcow2 overlay backing
for f in v3-4k v2-4k l2ext; do head -c 512 "$f" > "$f.header"; raw format-probe "$f.header" "qcow2-$f"; done
printf 'QFI\xfb\0\0\0\x01' > qcow1; raw format-probe qcow1 qcow1
head -c 512 /dev/zero > zero512; raw format-probe zero512 raw

# partitions: MBR with logical partitions, GPT (primary and backup), a hybrid-ish MBR.
truncate -s 4M mbr.img
printf 'label: dos\n2048,1024,83\n3072,2048,5\n4096,512,83\n5120,512,82\n' | sfdisk -q mbr.img
sparse partitions mbr.img mbr
truncate -s 4M gpt.img
sgdisk -n 1:2048:3071 -t 1:8300 -c 1:root -n 2:4096:6143 -t 2:8e00 -c 2:lvm gpt.img >/dev/null 2>&1
sparse partitions gpt.img gpt
sparse volume-probe gpt.img gpt

# LVM: one PV with a VG of two LVs (one in two segments); the metadata text for lvm-metadata.
if [ "$(id -u)" = 0 ]; then
    export LVM_SYSTEM_DIR=$work/lvm
    mkdir -p "$LVM_SYSTEM_DIR"
    cat > "$LVM_SYSTEM_DIR/lvm.conf" <<'CONF'
devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
global { use_lvmpolld = 0 }
CONF
    # LVs are added to vgcfgbackup's text and restored, as LVMFixtures does (no device-mapper needed).
    truncate -s 16M pv.img
    loop=$(losetup -f --show pv.img); loops+=("$loop")
    cfg="devices { filter = [ \"a|^$loop\$|\", \"r|.*|\" ] }"
    vg=fuzzvg$$
    pvcreate --config "$cfg" -q -y "$loop" >/dev/null 2>&1
    vgcreate --config "$cfg" -q -s 1M "$vg" "$loop" >/dev/null 2>&1
    vgcfgbackup --config "$cfg" -q -f vg0.txt "$vg" >/dev/null 2>&1
    python3 - vg0.txt vg.txt <<'PY'
import sys
text = open(sys.argv[1]).read()
close = text.rindex("}")
lvs = """
\tlogical_volumes {
\t\troot {
\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tsegment_count = 2
\t\t\tsegment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = [ "pv0", 0 ] }
\t\t\tsegment2 { start_extent = 2 extent_count = 1 type = "striped" stripe_count = 1 stripes = [ "pv0", 5 ] }
\t\t}
\t\tswap {
\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000002"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tsegment_count = 1
\t\t\tsegment1 { start_extent = 0 extent_count = 2 type = "striped" stripe_count = 1 stripes = [ "pv0", 2 ] }
\t\t}
\t}
"""
open(sys.argv[2], "w").write(text[:close] + lvs + text[close:])
PY
    vgcfgrestore --config "$cfg" -q -f vg.txt "$vg" >/dev/null 2>&1
    losetup -d "$loop"; loops=()
    cp pv.img pv-kept.img
    sparse lvm pv-kept.img pv
    sparse volume-probe pv-kept.img pv
    raw lvm-metadata vg.txt vgcfgbackup
    # The on-disk copy (no comments, one line per value) as the metadata area holds it.
    dd if=pv-kept.img bs=512 skip=9 count=16 status=none | tr -d '\0' > mda.txt
    raw lvm-metadata mda.txt metadata-area
else
    echo "fuzz-seeds: not root, no LVM seeds" >&2
fi

# LUKS: LUKS1 and LUKS2 (pbkdf2 and argon2id) at the lowest costs cryptsetup accepts; passphrase "fuzz".
luks() {  # NAME luksFormat-options...
    local name=$1; shift
    rm -f "$name"; truncate -s 4M "$name"
    printf fuzz | cryptsetup luksFormat -q --batch-mode --key-file - -s 256 "$@" "$name" >/dev/null
    sparse luks "$name" "$name"
}
luks luks1 --type luks1 --pbkdf-force-iterations 1000 --hash sha256
luks luks2-pbkdf2 --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --luks2-metadata-size 16k --luks2-keyslots-size 256k
luks luks2-argon2 --type luks2 --pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1 --luks2-metadata-size 16k --luks2-keyslots-size 256k
head -c 16384 luks2-pbkdf2 > luks2-header; sparse luks luks2-header luks2-header-only
dd if=luks2-pbkdf2 bs=1 skip=4096 count=12288 status=none | tr -d '\0' > luks2.json
raw luks2-json luks2.json luks2-pbkdf2
dd if=luks2-argon2 bs=1 skip=4096 count=12288 status=none | tr -d '\0' > luks2a.json
raw luks2-json luks2a.json luks2-argon2
sparse volume-probe luks2-header luks2

# iso9660: Rock Ridge + Joliet (xorriso and genisoimage, whose deep tree is relocated), Joliet only,
# plain level 1, El Torito with an isohybrid MBR; a tree of small files so the seeds stay small.
mkdir -p isotree/d/1/2/3/4/5/6/7/8/9
printf 'hi\n' > isotree/hello.txt; printf 'x' > isotree/d/1/2/3/4/5/6/7/8/9/deep
ln -s hello.txt isotree/link; ln -s "$(printf 'a%.0s' {1..150})/$(printf 'b%.0s' {1..150})" isotree/long-link
touch "isotree/$(printf 'n%.0s' {1..180})"; mknod isotree/null c 1 3 2>/dev/null || true
iso() { sparse iso9660 "$1" "$1"; }  # NAME
xorriso -as mkisofs -quiet -R -J -o rr-joliet isotree 2>/dev/null; iso rr-joliet
rm -f isotree/long-link  # genisoimage 1.1.11 spins on it
genisoimage -quiet -R -J -o genisoimage isotree 2>/dev/null; iso genisoimage
xorriso -as mkisofs -quiet --norock -J -o joliet isotree 2>/dev/null; iso joliet
xorriso -as mkisofs -quiet --norock -iso-level 1 -o plain1 isotree 2>/dev/null; iso plain1
head -c 2048 /dev/zero | tr '\0' B > isotree/boot.img
xorriso -as mkisofs -quiet -R -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -c boot.cat -b boot.img -no-emul-boot \
    -eltorito-alt-boot -e boot.img -no-emul-boot -o eltorito isotree 2>/dev/null; iso eltorito

# xfs: 16 MiB filesystems (below mkfs.xfs's 300 MB floor, allowed with the fstests variables),
# v5 with 1 KiB blocks and v4 from a prototype, holding the small tree, a fragmented file (a bmbt)
# and a remote symlink; filled on a kernel mount where it can (root), else from the prototype.
xfs_small() { TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f -b size=1024 -m rmapbt=0,reflink=0 "$@" >/dev/null 2>&1; }
# The clean log's cycle-stamped sectors would be most of a seed: zeroed (the log is not read clean).
xfs_zero_log() {  # IMAGE (1 KiB blocks, AG 0)
    local start blocks
    start=$(xfs_db -r -c 'sb 0' -c 'p logstart' "$1" | awk '{print $3}')
    blocks=$(xfs_db -r -c 'sb 0' -c 'p logblocks' "$1" | awk '{print $3}')
    dd if=/dev/zero of="$1" bs=1024 seek="$start" count="$blocks" conv=notrunc status=none
}
rm -f xfs5; truncate -s 16M xfs5
if xfs_small xfs5 && mkdir -p xfsmnt && mount -o loop xfs5 xfsmnt 2>/dev/null; then
    cp -a tree/. xfsmnt/ 2>/dev/null || true
    i=0; while [ $i -lt 40 ]; do echo "pwrite -S $i $((i * 2048)) 1024"; i=$((i + 1)); done | xfs_io -f xfsmnt/frag >/dev/null
    ln -s "$(printf 'r%.0s' {1..400})" xfsmnt/remote-link
    umount xfsmnt; xfs_zero_log xfs5; sparse xfs xfs5 v5-1k
fi
# xfs-log: a log left dirty by a crash (creates, a rename, an unlink, an xattr, then
# `shutdown -f`), generated rather than committed: the log is most of its 2 MiB.
rm -f xfsdirty; truncate -s 16M xfsdirty
if xfs_small xfsdirty && mkdir -p xfsmnt && mount -o loop xfsdirty xfsmnt 2>/dev/null; then
    mkdir xfsmnt/d; for i in $(seq 1 30); do echo $i > xfsmnt/d/f$i; done
    setfattr -n user.a -v b xfsmnt/d/f1 2>/dev/null || true
    mv xfsmnt/d/f2 xfsmnt/d/g2; rm xfsmnt/d/f3
    xfs_io -x -c 'shutdown -f' xfsmnt; umount xfsmnt; sparse xfs-log xfsdirty v5-1k-dirty
fi
printf '/dev/null\n0 0\nd--755 0 0\n hello ---644 1 2 %s\n link l--777 0 0 %s\n d d--755 0 0\n  x ---600 0 0 %s\n $\n$\n' \
    "$PWD/tree/hello.txt" "$(printf 'q%.0s' {1..300})" "$PWD/tree/dir/random.bin" > xfs.proto
rm -f xfs4; truncate -s 16M xfs4
xfs_small -m crc=0 -n ftype=0 -p xfs.proto xfs4 && xfs_zero_log xfs4 && sparse xfs xfs4 v4-ftype0

# ntfs: mkntfs -Q on 2 MiB, filled through ntfs-3g (a file, a hard link, an Interix symlink, a
# sparse file, a named stream, a small tree), its all-0xFF $LogFile sectors zeroed (a read-only
# mount does not read them) so the sparse seed holds metadata only. Still ~220 KiB ($UpCase alone
# is 128 KiB), so it is generated here rather than committed; fuzz/corpus/ntfs has its first 64 KiB.
if command -v mkntfs >/dev/null && command -v ntfs-3g >/dev/null; then
    truncate -s 2M ntfs2m && mkntfs -F -Q -q -L fuzz ntfs2m >/dev/null 2>&1 && mkdir -p ntfsmnt
    ntfs-3g -o no_detach,streams_interface=xattr ntfs2m ntfsmnt </dev/null >/dev/null 2>&1 & ntfs3g=$!
    for _ in $(seq 1 50); do mountpoint -q ntfsmnt && break; sleep 0.1; done
    mkdir -p ntfsmnt/d/e && printf 'hi\n' > ntfsmnt/hello.txt && ln -s hello.txt ntfsmnt/link
    ln ntfsmnt/hello.txt ntfsmnt/d/hard && setfattr -n user.s -v v ntfsmnt/hello.txt
    truncate -s 70000 ntfsmnt/d/sparse && head -c 3000 /dev/urandom > ntfsmnt/d/e/r.bin
    fusermount -u ntfsmnt; wait $ntfs3g || true
    python3 - ntfs2m <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
for i in range(0, len(d), 512):
    if d[i:i + 512] == b'\xff' * 512: d[i:i + 512] = bytes(512)
open(sys.argv[1], 'wb').write(d)
PY
    sparse ntfs ntfs2m small-volume
else
    echo "fuzz-seeds: no ntfs seed (mkntfs or ntfs-3g missing)" >&2
fi

# volume probe: the first MiB of an image of every type Disk/Probe knows, made by its own mkfs
# (the same tools the probe tests compare with blkid); a tool that is missing is skipped.
truncate -s 1M swap; mkswap -q -L fuzzswap swap >/dev/null; sparse volume-probe swap swap
probe_seed() {  # NAME SIZE COMMAND (the image is $img)
    local name=$1 size=$2 img=vp-$1; shift 2
    rm -f "$img"; truncate -s "$size" "$img"
    if (eval "$*") >/dev/null 2>&1; then
        head -c 1M "$img" > "$img.1m"; sparse volume-probe "$img.1m" "$name"
    else
        echo "fuzz-seeds: no $name seed (tool missing?)" >&2
    fi
}
probe_seed ext3 8M 'mkfs.ext3 -q -F -L fuzz $img'
probe_seed ext4 8M 'mkfs.ext4 -q -F -L fuzz $img'
probe_seed jbd 8M 'mke2fs -q -F -O journal_dev $img'
probe_seed xfs 300M 'mkfs.xfs -q -f -L fuzz $img'
probe_seed btrfs 128M 'mkfs.btrfs -q -f -L fuzz $img'
probe_seed ntfs 16M 'mkntfs -q -F -f -L fuzz $img'
probe_seed fat12 4M 'mkfs.vfat -F 12 -n FUZZ $img'
probe_seed fat16 32M 'mkfs.vfat -F 16 -n FUZZ $img'
probe_seed fat32 64M 'mkfs.vfat -F 32 -n FUZZ $img'
probe_seed exfat 16M 'mkfs.exfat -L fuzz $img'
probe_seed udf 16M 'mkudffs --label=fuzz $img'
probe_seed udf4k 16M 'mkudffs --blocksize=4096 --label=fuzz $img'
probe_seed iso9660 0 'xorriso -as mkisofs -quiet -V FUZZ -J -o $img tree'
probe_seed squashfs 0 'mksquashfs tree $img -quiet -noappend'
probe_seed luks1 4M 'printf fuzz | cryptsetup luksFormat -q --batch-mode --type luks1 --pbkdf-force-iterations 1000 --key-file - $img && truncate -s 4096 $img'
echo "fuzz-seeds: wrote $(find "$out" -type f | wc -l) seeds under $out"
