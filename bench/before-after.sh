#!/usr/bin/env bash
# Runs the figures of cat-copyout.sh, mount-read.sh and qcow2-read.sh with two imagemount
# builds side by side, in one run: the current tree and an older revision (default be8e785,
# the last commit before the untrusted-image work: name checks, checked arithmetic, the probing
# policy and the sandbox). Runs alternate between the two builds so that drift in the machine's
# load hits both alike. Prints each figure for both, the ratio new/old (time: below 1 means the
# new build is faster) for wall time and for CPU time (user + system, steadier on a loaded
# machine), and whether the lower quartile of the CPU times is within TOLERANCE percent (default 3).
#
# With REVISION `sandbox-off` the "old" side is the current build run with
# IMAGEMOUNT_SANDBOX=off, so the figures show what entering the sandbox (Landlock, the seccomp
# filter) costs each command, with everything else equal.
#
# usage: bench/before-after.sh [REVISION|sandbox-off] [workdir]
#        RUNS=N (default 7) repetitions of each timed step; the median is compared.
#        FIGURES="cat copyout ..." runs only those figures.
# Needs hyperfine-free tools only (GNU time, bc), plus e2fsprogs, fdisk, qemu-img.
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-be8e785}
WORK=${2:-$(mktemp -d /tmp/imagemount-before-after.XXXXXX)}
RUNS=${RUNS:-7}
TOLERANCE=${TOLERANCE:-3}
mkdir -p "$WORK"

# The two builds (release, static stdlib, as the other bench scripts build).
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null
NEW_DIR=$(swift build -c release --show-bin-path)
OLD_TREE=$WORK/old-tree
if [ "$REV" = sandbox-off ]; then
  mkdir -p "$WORK/old"
  cp "$NEW_DIR/imagemount" "$NEW_DIR/qcow2-bench" "$WORK/old/"
elif [ ! -x "$WORK/old/imagemount" ]; then
  git worktree remove --force "$OLD_TREE" 2>/dev/null || true
  git worktree add --detach "$OLD_TREE" "$REV" >/dev/null 2>&1
  (cd "$OLD_TREE" && swift build -c release --static-swift-stdlib --product imagemount >/dev/null &&
     swift build -c release --static-swift-stdlib --product qcow2-bench >/dev/null)
  mkdir -p "$WORK/old"
  OLD_BIN=$(cd "$OLD_TREE" && swift build -c release --show-bin-path)
  cp "$OLD_BIN/imagemount" "$OLD_BIN/qcow2-bench" "$WORK/old/"
  git worktree remove --force "$OLD_TREE"
fi
mkdir -p "$WORK/new"
cp "$NEW_DIR/imagemount" "$NEW_DIR/qcow2-bench" "$WORK/new/"

# Images: the 4000-entry tree of cat-copyout.sh on a partitioned raw disk, the 1 GiB file and
# 10 000-entry tree of mount-read.sh, the compressed qcow2 of qcow2-read.sh (256 MiB of data).
DISK=$WORK/disk.img
if [ ! -f "$DISK" ]; then
  echo "building images in $WORK ..." >&2
  src=$WORK/src; rm -rf "$src"; mkdir -p "$src/etc" "$src/tree" "$src/walk"
  echo bench-guest > "$src/etc/hostname"
  bench/make-tree.py small4000 "$src/tree"
  for d in $(seq -w 0 99); do
    mkdir -p "$src/walk/d$d"
    (cd "$src/walk/d$d" && seq -f "f%03g" 0 99 | xargs -n 100 sh -c 'for f; do echo "$f" > "$f"; done' sh)
  done
  head -c 1G /dev/urandom > "$src/big.bin"
  truncate -s 3G "$DISK"
  printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$DISK"
  offset=$((2048 * 512))
  mke2fs -F -q -t ext4 -b 4096 -I 256 -E offset=$offset -d "$src" "$DISK" $(( ($(stat -c %s "$DISK") - offset) / 1024 ))k
  rm -rf "$src"
  truncate -s 1G "$WORK/src.raw"
  for ((i = 0; i < 64; i++)); do
    head -c $((3 << 20)) /dev/urandom | base64 -w0 |
      dd of="$WORK/src.raw" bs=1M seek=$((i * 16)) conv=notrunc status=none iflag=fullblock
  done
  qemu-img convert -c -O qcow2 "$WORK/src.raw" "$WORK/zlib.qcow2"
  qemu-img convert -c -O qcow2 -o compression_type=zstd "$WORK/src.raw" "$WORK/zstd.qcow2"
  rm -f "$WORK/src.raw"
fi

# copy-out writes to tmpfs, as cat-copyout.sh does, so that disk write-back does not swamp it.
MNT=$WORK/mnt; OUT=$(mktemp -d /dev/shm/imagemount-before-after.XXXXXX); mkdir -p "$MNT"
cleanup() { fusermount3 -u -z "$MNT" 2>/dev/null || true; rm -rf "$OUT"; [ -z "${CG:-}" ] || rmdir "$CG" 2>/dev/null || true; }
trap cleanup EXIT

now() { date +%s.%N; }
# "wall cpu" seconds of one run of "$@" (stdout discarded); cpu = user + system, which a loaded
# machine disturbs far less than wall time.
# (bash's time keyword, which also times shell functions; its children's CPU is counted.)
timed() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" >/dev/null 2>/dev/null; } 2> "$WORK/time"
  awk '{ printf "%s %.3f\n", $1, $2 + $3 }' "$WORK/time"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# The lower quartile: this VM's CPU times have outliers of up to 5x in both builds alike (the
# hypervisor's steal, not our code: a 1 GiB read took 0.45 s of server CPU in most runs and
# 1-2.5 s in a quarter of them), which move a median of 15 by several percent either way; noise
# only ever adds time, so the quartile below the median is the steadier figure of each build's
# own cost. The median is printed too.
quartile() { sort -g | awk '{ v[NR] = $1 } END { i = int((NR + 3) / 4); print v[i < 1 ? 1 : i] }'; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Dentries and inodes only (2), not the page cache: the mount's own cache goes with its inodes
# (and a new mount starts with none), while the image stays cached on the host, so the figures
# time imagemount rather than this machine's shared disk (whose speed varied 3x between runs).
drop_caches() { sync; echo 2 > /proc/sys/vm/drop_caches; }

# 20 cats per timed step: one takes a few ms, below what the timers resolve well.
step_cat()     { for _ in $(seq 20); do "$1/imagemount" cat -a "$DISK" /etc/hostname; done; }
# Five copy-outs per timed step, each into an empty directory made before the clock starts:
# one copy-out's CPU time varies by 25% from run to run, and the rm -rf of the last step's
# 4000 entries (timed here before) added its own noise to what was measured.
COPIES=5
prepare_copyout() { rm -rf "$OUT"; mkdir -p "$OUT"; for i in $(seq $COPIES); do mkdir "$OUT/$i"; done; }
step_copyout() { for i in $(seq $COPIES); do "$1/imagemount" copy-out -a "$DISK" /tree "$OUT/$i"; done; }
step_zlib()    { "$1/qcow2-bench" "$WORK/zlib.qcow2"; }
step_zstd()    { "$1/qcow2-bench" "$WORK/zstd.qcow2"; }
# The mount server runs in a cgroup of its own, whose cpuacct.usage counts its CPU time in
# nanoseconds, every thread included, even the ones libfuse starts and ends per request.
# /proc/PID/stat counts 10 ms clock ticks (a 1 GiB read is about 27 of them, so one tick alone
# was 4%), and a server in the foreground changes what is measured. Without cgroup v1's
# cpuacct, /proc's ticks are used.
CG=/sys/fs/cgroup/cpuacct/imagemount-before-after.$$
mkdir -p "$CG" 2>/dev/null || CG=
server_cpu() {
  if [ -n "$CG" ]; then awk '{ printf "%.6f", $1 / 1e9 }' "$CG/cpuacct.usage"
  else awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; fi
}
# The server runs on CPU 1 and the client on CPU 0 (with two CPUs or more): left free, the
# server's threads met the client and each other on both CPUs and spun on the FUSE queue's
# lock (fuse_dev_do_read: 38% of the server's CPU time in __pv_queued_spin_lock_slowpath
# under perf), a cost that varied from 52 to 241 clock ticks for the same 10 walks as this VM's
# vCPUs were preempted; pinned, the same walks took 45-61 ticks for either build.
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then SERVER_CPU="taskset -c 1"; CLIENT_CPU="taskset -c 0"; else SERVER_CPU=; CLIENT_CPU=; fi
mount_with()   { ( [ -z "$CG" ] || echo "$BASHPID" > "$CG/cgroup.procs"
                   exec $SERVER_CPU "$1/imagemount" -a "$DISK" --ro --pid-file "$WORK/im.pid" "$MNT" ); }
unmount_with() { "$1/imagemount" unmount "$MNT"; sleep 0.2; }
# A step through the mount: wall time of the client, CPU time of the server for it.
through_mount() {
  local bin=$1; shift
  drop_caches; mount_with "$bin" >/dev/null; local pid; pid=$(cat "$WORK/im.pid")
  local c0 t0 t1 c1; c0=$(server_cpu "$pid"); t0=$(now)
  "$@" > /dev/null
  t1=$(now); c1=$(server_cpu "$pid")
  echo "$(peak_rss_kb "$pid")" >> "$WORK/rss.$(basename "$bin")"
  unmount_with "$bin" >/dev/null
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$c1 - $c0" | bc -l)"
}
step_read()    { through_mount "$1" $CLIENT_CPU cat "$MNT/big.bin"; }
# Ten cold walks per step (the dentry and attribute caches dropped before each): one is about
# 5 clock ticks of server CPU, too few for /proc's 10 ms resolution to compare.
walk_ten()     { for _ in $(seq 10); do drop_caches; $CLIENT_CPU find "$MNT/walk" -exec stat -c '%i %s %Y' {} + > /dev/null; done; }
step_walk()    { through_mount "$1" walk_ten; }

figures=${FIGURES:-"cat copyout zlib zstd read walk"}
cat "$DISK" "$WORK/zlib.qcow2" "$WORK/zstd.qcow2" > /dev/null
for b in old new; do : > "$WORK/rss.$b"; for f in $figures; do : > "$WORK/times.$f.$b"; done; done
for run in $(seq "$RUNS"); do
  for f in $figures; do
    # Alternate which build goes first, run by run.
    order="old new"; [ $((run % 2)) = 0 ] && order="new old"
    for b in $order; do
      if [ "$REV" = sandbox-off ] && [ "$b" = old ]; then export IMAGEMOUNT_SANDBOX=off; else unset IMAGEMOUNT_SANDBOX; fi
      # The images are read just before each step: this machine's memory manager (DAMON
      # reclaim) evicts page cache that has gone cold, and a step that finds its image evicted
      # measures the disk instead.
      cat "$DISK" "$WORK/zlib.qcow2" "$WORK/zstd.qcow2" > /dev/null 2>&1 || true
      case $f in
        read|walk) step_$f "$WORK/$b" >> "$WORK/times.$f.$b" ;;
        copyout) prepare_copyout; timed step_copyout "$WORK/$b" >> "$WORK/times.$f.$b" ;;
        *) timed step_$f "$WORK/$b" >> "$WORK/times.$f.$b" ;;
      esac
    done
  done
done
unset IMAGEMOUNT_SANDBOX

[ "$REV" = sandbox-off ] && echo "old = this build with IMAGEMOUNT_SANDBOX=off, new = the same build sandboxed"
printf '%-9s %10s %10s %8s   %10s %10s %8s   %10s %10s %8s   %s\n' figure "old wall" "new wall" "new/old" "old cpu" "new cpu" "new/old" "old cpu q1" "new cpu q1" "new/old" "cpu q1 within ${TOLERANCE}%"
fail=0
for f in $figures; do
  ow=$(cut -d' ' -f1 "$WORK/times.$f.old" | median); nw=$(cut -d' ' -f1 "$WORK/times.$f.new" | median)
  oc=$(cut -d' ' -f2 "$WORK/times.$f.old" | median); nc=$(cut -d' ' -f2 "$WORK/times.$f.new" | median)
  oq=$(cut -d' ' -f2 "$WORK/times.$f.old" | quartile); nq=$(cut -d' ' -f2 "$WORK/times.$f.new" | quartile)
  rw=$(echo "$nw / $ow" | bc -l); rc=$(echo "$nc / $oc" | bc -l); rq=$(echo "$nq / $oq" | bc -l)
  ok=$(echo "$rq <= 1 + $TOLERANCE / 100" | bc -l)
  [ "$ok" = 1 ] && verdict=yes || { verdict=NO; fail=1; }
  printf '%-9s %10.4f %10.4f %8.3f   %10.4f %10.4f %8.3f   %10.4f %10.4f %8.3f   %s\n' "$f" "$ow" "$nw" "$rw" "$oc" "$nc" "$rc" "$oq" "$nq" "$rq" "$verdict"
done
echo "peak RSS of the mount server: old $(sort -n "$WORK/rss.old" | tail -1) KiB, new $(sort -n "$WORK/rss.new" | tail -1) KiB"
echo "(median and lower quartile (q1) of $RUNS runs each; wall and CPU (user + system) seconds; for read and walk, wall time"
echo " of the client and CPU time of the mount server. cat = 20 cats of one small file, copyout ="
echo " 5 copy-outs of a 4000-entry tree, zlib/zstd = whole-image read of a compressed qcow2 by the qcow2 engine,"
echo " read = 1 GiB sequential read through a new mount, walk = 10 find+stat of 10 000 entries,"
echo " the kernel's dentries and inodes dropped before each; the image itself stays in the host's page cache)"
exit $fail
