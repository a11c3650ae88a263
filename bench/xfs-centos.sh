#!/usr/bin/env bash
# The CentOS 7 job of issue 15, timed: an MBR disk with /dev/sda1 XFS /boot and /dev/sda2 an
# LVM PV of VG `centos` holding `root` (XFS) and `swap`, fstab naming /dev/mapper/centos-root
# and UUID=. Times, in one run, with hyperfine (warm page cache, as a script running many
# commands sees it):
#   - `imagemount cat -a disk /etc/hostname` (inspection finds the root; goal under 15 ms),
#   - the same with `-m /dev/centos/root` (no inspection),
#   - `imagemount -a disk -i --ro MNT` until the mount is ready, then unmounted (goal under 50 ms),
#   - the kernel's nearest equivalent: mount the root LV's XFS read-only through a loop device
#     at its offset (no device-mapper here), cat, umount,
# and prints the ratios (ours / kernel) and imagemount's peak RSS for the cat.
#
# usage: bench/xfs-centos.sh [workdir]   (root: loop devices, lvm2, xfsprogs, hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d /tmp/imagemount-bench-centos.XXXXXX)}
RUNS=${RUNS:-30}
mkdir -p "$WORK"
swift build -c release --static-swift-stdlib --product imagemount >/dev/null
BIN=$(swift build -c release --show-bin-path)/imagemount
DISK=$WORK/centos7.img
MNT=$WORK/mnt; mkdir -p "$MNT"
SDA2=657408   # sectors
cleanup() { fusermount3 -u -z "$MNT" 2>/dev/null || true; umount "$MNT" 2>/dev/null || true; }
trap cleanup EXIT

if [ ! -f "$DISK.done" ]; then
  rm -f "$DISK"; truncate -s 800M "$DISK"
  printf 'label: dos\nlabel-id: 0x000c3e1a\nstart=2048, size=655360, type=83, bootable\nstart=%s, type=8e\n' $SDA2 |
    sfdisk -q --no-reread --no-tell-kernel "$DISK"
  truncate -s 320M "$WORK/boot.img"; mkfs.xfs -q -f "$WORK/boot.img"
  mount -o loop "$WORK/boot.img" "$MNT"; mkdir -p "$MNT/grub2"; echo 'menuentry CentOS' > "$MNT/grub2/grub.cfg"; umount "$MNT"
  BOOT_UUID=$(blkid -o value -s UUID "$WORK/boot.img")
  dd if="$WORK/boot.img" of="$DISK" bs=1M seek=1 conv=notrunc,sparse status=none
  truncate -s 400M "$WORK/root.img"; mkfs.xfs -q -f "$WORK/root.img"
  mount -o loop "$WORK/root.img" "$MNT"
  mkdir -p "$MNT"/{etc,bin,usr/bin,usr/lib,boot,var/log,root,home}
  echo centos7-guest > "$MNT/etc/hostname"
  echo 'CentOS Linux release 7.9.2009 (Core)' > "$MNT/etc/redhat-release"; cp "$MNT/etc/redhat-release" "$MNT/etc/centos-release"
  printf 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n' > "$MNT/etc/os-release"
  printf '/dev/mapper/centos-root / xfs defaults 0 0\nUUID=%s /boot xfs defaults 0 0\n/dev/mapper/centos-swap swap swap defaults 0 0\n' "$BOOT_UUID" > "$MNT/etc/fstab"
  cp /bin/ls "$MNT/bin/ls"
  seq 1 2000 | sed 's/^/line /' > "$MNT/var/log/messages"
  umount "$MNT"
  # The PV, the VG and its LVs (no device-mapper: the LVs are written into the metadata with
  # vgcfgrestore, never activated), then the XFS root into the LV's extents.
  LOOP=$(losetup -f --show -o $((SDA2 * 512)) "$DISK")
  CONF="devices { filter = [ \"a|^$LOOP\$|\", \"r|.*|\" ] }"
  pvcreate -y -q --config "$CONF" "$LOOP" 2>/dev/null
  vgcreate -q -s 4M --config "$CONF" centos "$LOOP" 2>/dev/null
  vgcfgbackup -q --config "$CONF" -f "$WORK/centos.vg" centos 2>/dev/null
  python3 - "$WORK/centos.vg" <<'EOF'
import sys
p = sys.argv[1]
text = open(p).read()
lv = lambda name, uid, start, count: f'''
		{name} {{
			id = "{uid}"
			status = ["READ", "WRITE", "VISIBLE"]
			segment_count = 1
			segment1 {{
				start_extent = 0
				extent_count = {count}
				type = "striped"
				stripe_count = 1
				stripes = [
					"pv0", {start}
				]
			}}
		}}'''
section = "\n\tlogical_volumes {" + lv("root", "R00tXF-aaaa-bbbb-cccc-dddd-eeee-ffff01", 0, 100) \
    + lv("swap", "SwapXF-aaaa-bbbb-cccc-dddd-eeee-ffff02", 100, 8) + "\n\t}\n"
close = text.rindex("}")
open(p, "w").write(text[:close] + section + text[close:])
EOF
  vgcfgrestore -q --config "$CONF" -f "$WORK/centos.vg" centos 2>/dev/null
  PE=$(pvs --config "$CONF" --noheadings -o pe_start --units s "$LOOP" 2>/dev/null | tr -dc 0-9)
  losetup -d "$LOOP"
  echo $(((SDA2 + PE) * 512)) > "$WORK/root.offset"
  dd if="$WORK/root.img" of="$DISK" bs=4M oflag=seek_bytes seek="$(cat "$WORK/root.offset")" conv=notrunc,sparse status=none
  rm -f "$WORK/boot.img" "$WORK/root.img"
  touch "$DISK.done"
fi
ROOT_OFFSET=$(cat "$WORK/root.offset")

[ "$("$BIN" cat -a "$DISK" /etc/hostname)" = centos7-guest ] || { echo "cat with inspection failed" >&2; exit 1; }
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/cat.json" \
  -n inspect-cat "$BIN cat -a $DISK /etc/hostname" \
  -n explicit-cat "$BIN cat -a $DISK -m /dev/centos/root /etc/hostname" >/dev/null
hyperfine -w 2 -r "$RUNS" --export-json "$WORK/mount.json" \
  -n inspect-mount "$BIN -a $DISK -i --ro $MNT && fusermount3 -u $MNT" \
  -n kernel-mount "mount -o loop,ro,offset=$ROOT_OFFSET $DISK $MNT && cat $MNT/etc/hostname >/dev/null && umount $MNT" >/dev/null
RSS=$( { /usr/bin/time -f '%M' "$BIN" cat -a "$DISK" /etc/hostname >/dev/null; } 2>&1 | tail -1)

python3 - "$WORK/cat.json" "$WORK/mount.json" "$RSS" <<'EOF'
import json, sys
res = {}
for f in sys.argv[1:3]:
    for r in json.load(open(f))["results"]:
        res[r["command"]] = r["median"] * 1000
rss = int(sys.argv[3]) / 1024
print(f"{'CentOS 7 layout (XFS /boot, LVM centos/root XFS)':52} {'median':>9}")
for name, goal in [("inspect-cat", 15), ("explicit-cat", None), ("inspect-mount", 50), ("kernel-mount", None)]:
    g = f"  (goal < {goal} ms: {'met' if res[name] < goal else 'MISSED'})" if goal else ""
    print(f"{name:52} {res[name]:7.1f} ms{g}")
# The mount figure includes the unmount (fusermount3), as the kernel's includes its umount.
print(f"{'ratio inspect-mount / kernel mount+cat+umount':52} {res['inspect-mount'] / res['kernel-mount']:7.2f}")
print(f"{'ratio inspect-cat / kernel mount+cat+umount':52} {res['inspect-cat'] / res['kernel-mount']:7.2f}")
print(f"{'peak RSS of cat with inspection':52} {rss:7.1f} MiB")
EOF
