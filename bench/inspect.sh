#!/usr/bin/env bash
# Inspection speed, in one run, on a small installed-looking guest (GPT: root, /boot by UUID,
# /data by LABEL, as the inspection tests build it):
#   imagemount cat -a IMG /etc/hostname          (inspects, mounts /, /boot, /data, reads)
#   imagemount -a IMG -i --ro MNT                (returns when the mount is ready)
# against virt-cat and guestmount -i when libguestfs is installed (one run each: without KVM
# its appliance boots under TCG, about 30 s; set LIBGUESTFS_BACKEND_SETTINGS=force_tcg).
# Prints mean times, ratios and peak RSS. Usage: bench/inspect.sh [workdir]   (root)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/imagemount-bench-inspect.XXXXXX)}
mkdir -p "$work"
mnt=$work/mnt; mkdir -p "$mnt"
cleanup() { "$bin" unmount -q "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true; [ -z "${1:-}" ] || true; }
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
bin=$(swift build -c release --show-bin-path)/imagemount
trap cleanup EXIT

img=$work/guest.img
[ -f "$img" ] || bench/make-guest.sh "$img" "$work"

hyperfine --style none --warmup 3 --runs 30 --export-json "$work/cat.json" \
  "$bin cat -a $img /etc/hostname" >/dev/null 2>&1
hyperfine --style none --warmup 2 --runs 15 --export-json "$work/mount.json" \
  --prepare "$bin unmount -q $mnt || true" "$bin -a $img -i --ro $mnt" >/dev/null 2>&1
"$bin" unmount -q "$mnt" || true

virt_cat=""; guestmount=""
if command -v virt-cat >/dev/null; then
  virt_cat=$( { /usr/bin/time -f %e virt-cat -a "$img" /etc/hostname >/dev/null; } 2>&1 | tail -1 )
fi
if command -v guestmount >/dev/null; then
  guestmount=$( { /usr/bin/time -f %e guestmount -a "$img" -i --ro "$mnt"; } 2>&1 | tail -1 )
  guestunmount "$mnt" 2>/dev/null || true
fi
cat_rss=$( { /usr/bin/time -f %M "$bin" cat -a "$img" /etc/hostname >/dev/null; } 2>&1 | tail -1 )

python3 - "$work" "$virt_cat" "$guestmount" "$cat_rss" <<'PY'
import json, sys
work, vc, gm, rss = sys.argv[1:5]
m = lambda n: json.load(open(f"{work}/{n}.json"))["results"][0]["mean"]
c, mo = m("cat"), m("mount")
def row(task, ours, theirs, name):
    if theirs:
        t = float(theirs)
        print(f"{task:38} {ours*1000:9.1f} ms   {name} {t:7.1f} s   ratio {t/ours:8.0f}x")
    else:
        print(f"{task:38} {ours*1000:9.1f} ms   ({name} not installed: not measured)")
row("cat /etc/hostname with inspection", c, vc, "virt-cat")
row("-i mount ready (guestmount -i)", mo, gm, "guestmount")
print(f"peak RSS of cat with inspection: {int(rss)/1024:.1f} MiB")
PY
