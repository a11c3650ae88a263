#!/bin/bash
# NTFS writes, imagemount against ntfs-3g on copies of the same fresh image in one run:
#   copy-in   `imagemount copy-in` of a host tree, against an ntfs-3g read-write mount,
#             `cp -a` of the same tree and the unmount (both: open, write, close cleanly);
#   cp -a     the same `cp -a` into imagemount's `--rw` FUSE mount and into ntfs-3g's, each
#             timed from the copy's start to the end of the unmount (everything written back).
# The tree is one large file and many small ones in 100 directories. Prints wall times, the
# ratio (ntfs-3g time / ours: above 1 means we are faster) and the peak RSS of each side
# (copy-in: GNU time's maximum RSS; FUSE servers: VmHWM just before the unmount).
#
# usage: bench/ntfs-write.sh [--file-mib MIB] [--files N] [--config release|debug]
#        (defaults 256 MiB, 5000 files, the release build; debug only for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."
FILE_MIB=256
FILES=5000
CONFIG=release
while [ $# -gt 0 ]; do
    case "$1" in
        --file-mib) FILE_MIB=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --config) CONFIG=$2; shift 2 ;;
        *) echo "ntfs-write.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done

swift build -c "$CONFIG" --product imagemount >/dev/null
BIN=$(swift build -c "$CONFIG" --show-bin-path)/imagemount

WORK=$(mktemp -d /tmp/imagemount-bench-ntfsw.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() { fusermount3 -u -z "$MNT" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

SRC=$WORK/src
mkdir -p "$SRC/tree"
head -c $((FILE_MIB << 20)) /dev/urandom > "$SRC/big.bin"
(cd "$SRC/tree" && for ((i = 0; i < FILES; i++)); do
    d=$((i % 100)); [ -d "d$d" ] || mkdir "d$d"; echo "file $i" > "d$d/f$i"; done)
BLANK=$WORK/blank.img
truncate -s $((FILE_MIB + 512))M "$BLANK"
mkntfs -F -Q -q -L BENCH "$BLANK" >/dev/null 2>&1
cat "$SRC/big.bin" >/dev/null

fresh() { cp --sparse=always "$BLANK" "$WORK/img"; sync; }

# ntfs3g_mount: starts ntfs-3g read-write on $MNT, sets $server.
ntfs3g_mount() {
    ntfs-3g -o no_detach "$WORK/img" "$MNT" </dev/null >/dev/null 2>&1 & server=$!
    for _ in $(seq 1 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
}
ours_mount() {
    "$BIN" -a "$WORK/img" -m /dev/sda --rw --pid-file "$WORK/pid" "$MNT" </dev/null >/dev/null 2>&1
    server=$(cat "$WORK/pid")
}
# unmount: records the server's VmHWM in $hwm, unmounts, waits for the server to exit.
unmount() {
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server/status" 2>/dev/null || echo 0)
    fusermount3 -u "$MNT"
    for _ in $(seq 1 600); do kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
}
now() { date +%s.%N; }

# copy-in: ours (open, copy, close) against ntfs-3g (mount, cp -a, unmount).
fresh
start=$(now); ntfs3g_mount; cp -a "$SRC/." "$MNT/"; unmount; end=$(now)
copyin_theirs=$(echo "$end - $start" | bc); copyin_theirs_rss=$hwm
fresh
start=$(now)
copyin_ours_rss=$( { /usr/bin/time -f '%M' "$BIN" copy-in -a "$WORK/img" -m /dev/sda "$SRC/big.bin" "$SRC/tree" / >/dev/null; } 2>&1 | tail -1)
end=$(now)
copyin_ours=$(echo "$end - $start" | bc)
ntfsfix -n "$WORK/img" >/dev/null

# cp -a into each --rw mount, until the unmount has written everything back.
fresh; ntfs3g_mount
start=$(now); cp -a "$SRC/." "$MNT/"; unmount; end=$(now)
cp_theirs=$(echo "$end - $start" | bc); cp_theirs_rss=$hwm
fresh; ours_mount
start=$(now); cp -a "$SRC/." "$MNT/"; unmount; end=$(now)
cp_ours=$(echo "$end - $start" | bc); cp_ours_rss=$hwm
ntfsfix -n "$WORK/img" >/dev/null

printf '%-28s %10s %12s %6s %12s %14s\n' test "ntfs-3g s" "imagemount s" ratio "ntfs-3g RSS" "imagemount RSS"
printf '%-28s %10.2f %12.2f %6.2f %10s KiB %10s KiB\n' "copy-in ${FILE_MIB} MiB + ${FILES} files" \
    "$copyin_theirs" "$copyin_ours" "$(echo "$copyin_theirs / $copyin_ours" | bc -l)" "$copyin_theirs_rss" "$copyin_ours_rss"
printf '%-28s %10.2f %12.2f %6.2f %10s KiB %10s KiB\n' "--rw cp -a, same tree" \
    "$cp_theirs" "$cp_ours" "$(echo "$cp_theirs / $cp_ours" | bc -l)" "$cp_theirs_rss" "$cp_ours_rss"
