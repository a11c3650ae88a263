#!/usr/bin/env bash
# Installs the Debian 12 packages imagemount builds against and the tools its tests use as oracles.
set -euo pipefail
packages=(
  # build: system libraries found through pkg-config
  pkg-config libext2fs-dev comerr-dev libfuse3-dev zlib1g-dev libzstd-dev libssl-dev libargon2-dev libxml2-dev libseccomp-dev ntfs-3g-dev libnbd-dev libarchive-dev libhivex-dev librbd-dev librpm-dev
  # runtime
  fuse3 perl libedit2
  # test oracles and image builders
  e2fsprogs fdisk gdisk qemu-utils attr acl util-linux lvm2 cryptsetup-bin strace python3 btrfs-progs mtools
  # RPM guests' applications (Tests/ImageMountTests/InspectRPMTests): rpm and rpmbuild make a
  # real rpmdb, sqlite3 and db5.3_load turn it into a Berkeley DB Packages file
  rpm sqlite3 db5.3-util
  # packaging (scripts/build-deb.sh, Tests/ImageMountTests/InstallTests): dpkg-shlibdeps, strip and
  # readelf, and a Debian 12 chroot to install the package into
  dpkg-dev binutils debootstrap
  # NBD servers for Tests/*/NBD* (memory, file plugins and the delay filter are in nbdkit; qemu-nbd is in qemu-utils)
  nbdkit
  # Windows inspection tests: hivexregedit (builds the hives), hivexget (bench anchor), ntfscat
  libwin-hivex-perl libhivex-bin
  # a one-node Ceph cluster for Tests/*/RBD* and bench/rbd-read.sh (Tests/Scripts/ceph-cluster.sh;
  # rbd, ceph and rados are in ceph-common); qemu-img's rbd driver for the bench and info oracle
  ceph-mon ceph-osd ceph-mgr ceph-common qemu-block-extra
  # volume probe oracles (Tests/GuestFSTests/Disk/Probe): mkfs tools for every type blkid names
  xfsprogs ntfs-3g dosfstools exfatprogs udftools squashfs-tools xorriso genisoimage
  # a second reader of XFS v4 images, which this kernel cannot mount (Tests/GuestFSTests/XFS/XFSV4Tests)
  libfsxfs-utils
  # ISO 9660 tests (Tests/GuestFSTests/ISO9660): isolinux's isohybrid MBR and isolinux.bin
  isolinux syslinux-utils
  # benchmarks
  hyperfine time fuse2fs bc fusefat fuseiso
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
