#!/usr/bin/env bash
# First run on a fresh Debian 12 machine: installs what is missing, builds imagemount, makes a
# small partitioned sample image (no image of yours needed) and shows imagemount working on it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product imagemount
bin=$(swift build -c release --show-bin-path)/imagemount

work=$(mktemp -d /tmp/imagemount-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/etc" "$work/tree/var/log"
echo demo-guest > "$work/tree/etc/hostname"
printf 'NAME="Demo Linux"\nVERSION_ID="1.0"\n' > "$work/tree/etc/os-release"
echo "booted fine" > "$work/tree/var/log/messages"
ln -s ../etc/hostname "$work/tree/var/hostname-link"
# A 64 MiB disk with an MBR and one ext4 partition starting at 1 MiB, filled from the tree.
img="$work/demo.img"
truncate -s 64M "$img"
printf 'label: dos\nstart=2048, type=83\n' | sfdisk -q "$img"
mke2fs -F -q -t ext4 -L demo-root -E offset=1048576 -d "$work/tree" "$img" 63M

run() { printf '\n$ imagemount %s\n' "$*"; "$bin" "$@"; }
run filesystems -a "$img" -l
run ls -a "$img" -l /etc
run cat -a "$img" /etc/hostname
run df -a "$img" -h
mkdir "$work/out"
run copy-out -a "$img" /var/log "$work/out"
printf '\n$ ls -l %s\n' "$work/out/log"; ls -l "$work/out/log"
printf '\nimagemount is built at %s\n' "$bin"
