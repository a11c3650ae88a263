#!/usr/bin/env bash
# df and inspect over a fleet, in one run: N libvirt domains (default 200), each one disk with an
# ext4 filesystem holding a small Linux root, examined by
#   imagemount df                    (no -a/-d: every domain, -P one per CPU, a process each)
#   imagemount df -P 1               (one at a time)
#   imagemount inspect -d DOMAIN     for every domain, one per CPU at a time (xargs -P)
# against the kernel doing the same jobs one image at a time (mount -o ro,loop; df, or reading
# /etc/os-release and /etc/hostname; umount), and virt-df when libguestfs is installed (one run:
# its appliance boots under TCG here).
# The domains are XML files in a libvirt config folder (IMAGEMOUNT_LIBVIRT_DIR), the images
# raw and qcow2 (half each; the kernel's run reads the raw ones and the raw twins of the qcow2s).
# Prints total times, images per second, ratios and the peak RSS of one worker process.
# Usage: bench/fleet-df.sh [N] [workdir]   (root; IMAGEMOUNT_BIN=path skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
work=${2:-$(mktemp -d /tmp/imagemount-bench-fleet.XXXXXX)}
mkdir -p "$work/lv" "$work/img" "$work/mnt"
# IMAGEMOUNT_BIN: a binary already built (skips the release build).
if [ -n "${IMAGEMOUNT_BIN:-}" ]; then bin=$IMAGEMOUNT_BIN; else
  swift build -c release --static-swift-stdlib --product imagemount >/dev/null
  bin=$(swift build -c release --show-bin-path)/imagemount
fi
cleanup() { umount "$work/mnt" 2>/dev/null || true; }
trap cleanup EXIT

if [ ! -f "$work/img/template.img" ]; then
  mkdir -p "$work/tree/etc" "$work/tree/var/log"
  echo fleet > "$work/tree/etc/hostname"
  printf 'ID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39"\n' > "$work/tree/etc/os-release"
  printf '127.0.0.1 localhost\n' > "$work/tree/etc/hosts"
  mkdir -p "$work/tree/bin"; cp /bin/true "$work/tree/bin/true"
  head -c 3M /dev/urandom > "$work/tree/var/log/messages"
  truncate -s 256M "$work/img/template.img"
  mke2fs -F -q -t ext4 -d "$work/tree" "$work/img/template.img"
  qemu-img convert -O qcow2 "$work/img/template.img" "$work/img/template.qcow2"
fi
rm -f "$work"/lv/*.xml
for i in $(seq -w 1 "$n"); do
  if [ $((10#$i % 2)) -eq 0 ]; then fmt=qcow2; else fmt=raw; fi
  raw=$work/img/vm$i.img; disk=$raw
  [ -f "$raw" ] || cp --sparse=always "$work/img/template.img" "$raw"
  if [ $fmt = qcow2 ]; then disk=$work/img/vm$i.qcow2; [ -f "$disk" ] || cp "$work/img/template.qcow2" "$disk"; fi
  printf "<domain type='kvm'><name>vm%s</name><uuid>00000000-0000-4000-8000-%012d</uuid><devices><disk type='file' device='disk'><driver name='qemu' type='%s'/><source file='%s'/><target dev='vda'/></disk></devices></domain>\n" \
    "$i" "$((10#$i))" "$fmt" "$disk" > "$work/lv/vm$i.xml"
done
export IMAGEMOUNT_LIBVIRT_DIR=$work/lv
sync; echo 3 > /proc/sys/vm/drop_caches

seconds() { python3 -c 'import sys,time; print(f"{time.time():.6f}")'; }
t0=$(seconds); "$bin" df > "$work/ours.txt"; t1=$(seconds)
"$bin" df -P 1 > "$work/ours1.txt"; t2=$(seconds)
for i in $(seq -w 1 "$n"); do
  mount -o ro,loop "$work/img/vm$i.img" "$work/mnt"; df -k "$work/mnt" >/dev/null; umount "$work/mnt"
done
t3=$(seconds)
# inspect: one process per domain, as many at once as CPUs; each report must name the OS.
seq -w 1 "$n" | xargs -P "$(nproc)" -I{} sh -c '"$1" inspect -d vm{} > "$2/inspect.vm{}.xml"' sh "$bin" "$work"
t4=$(seconds)
for i in $(seq -w 1 "$n"); do
  mount -o ro,loop "$work/img/vm$i.img" "$work/mnt"; cat "$work/mnt/etc/os-release" "$work/mnt/etc/hostname" >/dev/null; umount "$work/mnt"
done
t5=$(seconds)
found=$(grep -l '<hostname>fleet</hostname>' "$work"/inspect.vm*.xml | wc -l)
[ "$found" -eq "$n" ] || { echo "inspect found the OS in $found of $n images" >&2; exit 1; }
rows=$(($(wc -l < "$work/ours.txt") - 1))
cmp -s "$work/ours.txt" "$work/ours1.txt" || { echo "df and df -P 1 differ" >&2; exit 1; }
[ "$rows" -eq "$n" ] || { echo "expected $n rows, got $rows" >&2; exit 1; }
# Peak RSS of one worker (the largest waited-for descendant) and of the parent.
rss=$( { /usr/bin/time -f %M "$bin" df -P 1 >/dev/null; } 2>&1 | tail -1 )
virt_df=""
if command -v virt-df >/dev/null; then
  virt_df=$( { /usr/bin/time -f %e virt-df -d vm001 >/dev/null; } 2>&1 | tail -1 )
fi
irss=$( { /usr/bin/time -f %M "$bin" inspect -d vm001 >/dev/null; } 2>&1 | tail -1 )
python3 - "$n" "$t0" "$t1" "$t2" "$t3" "$rss" "$virt_df" "$(nproc)" "$t4" "$t5" "$irss" <<'PY'
import sys
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:6]); rss = int(sys.argv[6]); vd = sys.argv[7]; cpus = sys.argv[8]
t4, t5, irss = float(sys.argv[9]), float(sys.argv[10]), int(sys.argv[11])
ours, ours1, kernel = t1 - t0, t2 - t1, t3 - t2
insp, kinsp = t4 - t3, t5 - t4
print(f"{n} domains (half raw, half qcow2), {cpus} CPUs")
print(f"imagemount df (-P {cpus})    {ours:7.2f} s  {n/ours:7.0f} images/s")
print(f"imagemount df -P 1          {ours1:7.2f} s  {n/ours1:7.0f} images/s")
print(f"kernel loop mount+df+umount {kernel:7.2f} s  {n/kernel:7.0f} images/s   ratio {kernel/ours:5.1f}x (parallel), {kernel/ours1:5.1f}x (-P 1)")
if vd:
    v = float(vd)
    print(f"virt-df, one domain         {v:7.2f} s   (x{n}: {v*n:.0f} s)   ratio {v*n/ours:7.0f}x")
print(f"imagemount inspect (-P {cpus}) {insp:7.2f} s  {n/insp:7.0f} images/s")
print(f"kernel loop mount+cat+umount {kinsp:7.2f} s  {n/kinsp:7.0f} images/s   ratio {kinsp/insp:5.1f}x")
print(f"peak RSS of one df worker   {rss/1024:7.1f} MiB, of one inspect {irss/1024:.1f} MiB")
PY
