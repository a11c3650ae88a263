#!/usr/bin/env bash
# Builds the small installed-looking guest that bench/inspect.sh and bench/startup.sh time, as the
# inspection tests build it: GPT, sda1 root (Fedora 39, /etc/fstab naming /boot by UUID and /data
# by LABEL), sda2 /boot, sda3 /data, each ext4 made by mke2fs -d.
# Usage: bench/make-guest.sh IMAGE WORKDIR   (WORKDIR holds the source trees)
set -euo pipefail
img=$1; work=$2
root=$work/root; mkdir -p "$root/etc" "$root/bin" "$root/boot" "$root/data" "$work/boot" "$work/data"
cp /bin/ls "$root/bin/ls"
echo bench-guest > "$root/etc/hostname"
printf 'ID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39"\n' > "$root/etc/os-release"
uuid=0b007b00-7b00-4b00-8b00-0000000b0070
printf 'UUID=%s /boot ext4 defaults 1 2\nLABEL=DATA /data ext4 defaults 1 2\n' "$uuid" > "$root/etc/fstab"
echo kernel > "$work/boot/vmlinuz"; echo payload > "$work/data/file"
truncate -s 200M "$img"
sgdisk -o -n 1:2048:+100M -n 2:0:+40M -n 3:0:+40M "$img" >/dev/null
mke2fs -F -q -t ext4 -E offset=$((2048*512)) -d "$root" "$img" 100M
mke2fs -F -q -t ext4 -U $uuid -E offset=$(((2048+204800)*512)) -d "$work/boot" "$img" 40M
mke2fs -F -q -t ext4 -L DATA -E offset=$(((2048+286720)*512)) -d "$work/data" "$img" 40M
