#!/usr/bin/env bash
# A 4 TiB virtual disk with a few GiB of data behind a 3-deep qcow2 chain (base <- mid <- top),
# imagemount against qemu-io in one run (issue 20's terabyte-image figure):
#   1. open: `imagemount ls -m /dev/sda1 /` on the top image against `qemu-io -r -c 'read 0 4k'`
#      (both open the whole chain and read through it);
#   2. `-i` mount ready: `imagemount -a top.qcow2 -i --ro MNT` until it returns (mounted);
#   3. random 4 KiB reads: READS random 4 KiB pieces of a DATA_GIB file, cold caches, read
#      through the mount (posix_fadvise RANDOM, one pread each, all but the first timed) against
#      qemu-io reading the same device offsets (found with debugfs bmap) from the same chain (its
#      time for all of them less its time for the first alone, which holds its start and open);
#   4. peak RSS of the mount server through all of it, and of qemu-io.
# The guest: GPT, one ext4 partition over the whole 4 TiB (mke2fs -d: an installed-looking root
# and /data.bin); base.qcow2 holds it, mid.qcow2 and top.qcow2 each rewrite OVERLAY_MIB of
# data.bin's blocks (64 KiB writes at random places, by qemu-io), so reads come from all three.
# Prints best-of-RUNS times, ratios (qemu-io time / ours: above 1 means imagemount is faster)
# and peak RSS.
# Usage: bench/big-chain.sh [WORKDIR]   (root; DATA_GIB=2 OVERLAY_MIB=256 READS=2000 RUNS=3;
#        IMAGEMOUNT_BIN=path skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_GIB=${DATA_GIB:-2}
OVERLAY_MIB=${OVERLAY_MIB:-256}
READS=${READS:-2000}
RUNS=${RUNS:-3}
WORK=${1:-$(mktemp -d /tmp/imagemount-bench-chain.XXXXXX)}
mkdir -p "$WORK"
if [ -z "${IMAGEMOUNT_BIN:-}" ]; then
    swift build -c release --static-swift-stdlib --product imagemount >/dev/null
    IMAGEMOUNT_BIN=$(swift build -c release --show-bin-path)/imagemount
fi
BIN=$IMAGEMOUNT_BIN
MNT=$WORK/mnt; mkdir -p "$MNT"
cleanup() { "$BIN" unmount "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true; }
trap cleanup EXIT

if [ ! -f "$WORK/top.qcow2" ]; then
    echo "building the 4 TiB chain in $WORK ..." >&2
    root=$WORK/root; rm -rf "$root"; mkdir -p "$root/etc" "$root/bin"
    cp /bin/ls "$root/bin/ls"
    echo bench-chain > "$root/etc/hostname"
    printf 'ID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39"\n' > "$root/etc/os-release"
    printf '/dev/sda1 / ext4 defaults 1 1\n' > "$root/etc/fstab"
    head -c $((DATA_GIB << 30)) /dev/urandom > "$root/data.bin"
    truncate -s 4T "$WORK/base.raw"
    sgdisk -o -n 1:2048:0 "$WORK/base.raw" >/dev/null
    sectors=$(sgdisk -i 1 "$WORK/base.raw" | sed -n 's/^Partition size: \([0-9]*\) sectors.*/\1/p')
    mke2fs -F -q -t ext4 -b 4096 -E offset=$((2048 * 512)),lazy_itable_init=1,lazy_journal_init=1 \
        -d "$root" "$WORK/base.raw" $((sectors / 8))
    rm -rf "$root"
    qemu-img convert -O qcow2 "$WORK/base.raw" "$WORK/base.qcow2"
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$WORK/mid.qcow2"
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$WORK/top.qcow2"
    # Device offsets of data.bin's blocks: one debugfs bmap per piece. A piece is 4 KiB for the
    # reads, 64 KiB (16 blocks, checked to be contiguous) for the overlay writes.
    blocks=$((DATA_GIB << 18))
    python3 - "$blocks" "$READS" "$OVERLAY_MIB" > "$WORK/pieces" <<'EOF'
import random, sys
blocks, reads, overlay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20)
for layer in ("mid", "top"):
    for _ in range(overlay * 16):          # 64 KiB writes: overlay MiB each
        print(layer, rng.randrange(0, blocks // 16) * 16)
for _ in range(reads):
    print("read", rng.randrange(0, blocks))
EOF
    awk '{ print "bmap /data.bin " $2; if ($1 != "read") print "bmap /data.bin " ($2 + 15) }' "$WORK/pieces" > "$WORK/bmap.cmds"
    debugfs -f "$WORK/bmap.cmds" "$WORK/base.raw?offset=$((2048 * 512))" 2>/dev/null | grep -v '^debugfs' > "$WORK/bmap.out"
    rm -f "$WORK/base.raw"
    # Pair each piece with its first block's device offset; 64 KiB pieces not contiguous on disk
    # are dropped (their writes would span an extent break).
    python3 - "$WORK" <<'EOF'
import sys
work = sys.argv[1]
pieces = [l.split() for l in open(f"{work}/pieces")]
phys = [int(l) for l in open(f"{work}/bmap.out")]
i = 0
out = {"mid": open(f"{work}/mid.io", "w"), "top": open(f"{work}/top.io", "w"), "read": open(f"{work}/reads", "w")}
pattern = 0
for kind, block in pieces:
    first = phys[i]; i += 1
    dev = 1048576 + first * 4096
    if kind == "read":
        out["read"].write(f"{int(block) * 4096} {dev}\n")
        continue
    last = phys[i]; i += 1
    if last != first + 15:
        continue
    pattern = (pattern + 1) % 250
    out[kind].write(f"write -q -P {pattern + 1} {dev} 64k\n")
for f in out.values():
    f.close()
EOF
    qemu-io -f qcow2 "$WORK/mid.qcow2" < "$WORK/mid.io" >/dev/null
    qemu-io -f qcow2 "$WORK/top.qcow2" < "$WORK/top.io" >/dev/null
    awk '{ print "read -q " $2 " 4k" }' "$WORK/reads" > "$WORK/reads.io"
    awk '{ print $1 }' "$WORK/reads" > "$WORK/reads.file"
fi
ls -ls "$WORK"/*.qcow2 >&2
qemu-img info --backing-chain "$WORK/top.qcow2" | grep -E '^(image|virtual size|disk size)' >&2

now() { date +%s.%N; }
# Cold image caches, warm programs: the images leave the page cache, then the binaries (and
# qemu-io's libraries, and python) are read back, so that loading a program is not what is timed.
programs=("$BIN" "$(command -v qemu-io)" $(ldd "$(command -v qemu-io)" | awk '$3 ~ /^\// { print $3 }'))
cold() {
    sync; echo 3 > /proc/sys/vm/drop_caches
    cat "${programs[@]}" >/dev/null; python3 -c pass; qemu-io --version >/dev/null; "$BIN" --version >/dev/null
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a ? b : a) }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
# Random 4 KiB preads of the file at the offsets in reads.file (no read-ahead); prints the
# seconds all but the first took (python's start and the open are not timed).
readfile() {
    python3 - "$1" "$WORK/reads.file" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
offsets = [int(line) for line in open(sys.argv[2])]
os.pread(fd, 4096, offsets[0])  # the first one is left out, as it is for qemu-io
start = time.monotonic()
for offset in offsets[1:]:
    if len(os.pread(fd, 4096, offset)) != 4096:
        sys.exit("short read")
print("%.4f" % (time.monotonic() - start))
EOF
}

o_ours=999; o_qemu=999; m_ours=999; r_ours=999; r_qemu=999; rss=0; qrss=0
for _ in $(seq "$RUNS"); do
    cold; t0=$(now); "$BIN" ls -a "$WORK/top.qcow2" -m /dev/sda1 / >/dev/null; t1=$(now)
    o_ours=$(best "$o_ours" "$(elapsed "$t0" "$t1")")
    cold; t0=$(now); qemu-io -r -f qcow2 -c 'read -q 0 4k' "$WORK/top.qcow2" >/dev/null; t1=$(now)
    o_qemu=$(best "$o_qemu" "$(elapsed "$t0" "$t1")")

    cold; t0=$(now); "$BIN" -a "$WORK/top.qcow2" -i --ro --pid-file "$WORK/im.pid" "$MNT"; t1=$(now)
    m_ours=$(best "$m_ours" "$(elapsed "$t0" "$t1")")
    [ "$(cat "$MNT/etc/hostname")" = bench-chain ] || { echo "the -i mount does not show the guest" >&2; exit 1; }
    cold; r_ours=$(best "$r_ours" "$(readfile "$MNT/data.bin")")
    r=$(awk '/VmHWM/ { print $2 }' "/proc/$(cat "$WORK/im.pid")/status"); [ "$r" -gt "$rss" ] && rss=$r
    "$BIN" unmount "$MNT"

    # qemu-io opens the chain and then reads: its time for the first read alone (start, open,
    # one read) is taken off its time for all of them.
    cold; t0=$(now)
    /usr/bin/time -f '%M' -o "$WORK/qrss" qemu-io -r -f qcow2 "$WORK/top.qcow2" < "$WORK/reads.io" >/dev/null
    t1=$(now)
    cold; t2=$(now); head -1 "$WORK/reads.io" | qemu-io -r -f qcow2 "$WORK/top.qcow2" >/dev/null; t3=$(now)
    r_qemu=$(best "$r_qemu" "$(awk -v a="$(elapsed "$t0" "$t1")" -v b="$(elapsed "$t2" "$t3")" 'BEGIN { printf "%.4f", a - b }')")
    r=$(cat "$WORK/qrss"); [ "$r" -gt "$qrss" ] && qrss=$r
done
ratio() { awk -v q="$1" -v m="$2" 'BEGIN { printf "%.2f", (m > 0 ? q / m : 0) }'; }
printf '%-34s %12s %10s %6s\n' step imagemount qemu-io ratio
printf '%-34s %11.3fs %9.3fs %6s\n' "open the chain (ls / | read 4k)" "$o_ours" "$o_qemu" "$(ratio "$o_qemu" "$o_ours")"
printf '%-34s %11.3fs %10s\n' "-i mount ready" "$m_ours" "-"
printf '%-34s %11.3fs %9.3fs %6s\n' "$((READS - 1)) random 4 KiB reads, cold" "$r_ours" "$r_qemu" "$(ratio "$r_qemu" "$r_ours")"
printf '%-34s %8s KiB %6s KiB\n' "peak RSS (mount server | qemu-io)" "$rss" "$qrss"
