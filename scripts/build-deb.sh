#!/usr/bin/env bash
# Builds imagemount_VERSION_ARCH.deb in OUTDIR (the first argument, else the current
# directory) with dpkg-deb, and prints its path.
#
# The files are scripts/install.sh's, installed under /usr into a staging tree (man pages
# gzipped, Debian policy 12.1). The binary is IMAGEMOUNT_BIN, else a release build with the
# Swift runtime linked in (--static-swift-stdlib): the Swift runtime is no Debian package, so a
# binary that needs it dynamically is refused.
#
# Depends is computed, not written down: dpkg-shlibdeps over the binary gives the packages of
# the libraries it is linked with (libc6, libfuse3-3, libext2fs2, …, with their minimum
# versions from the packages' symbols files). The libraries imagemount dlopens when a feature
# first needs one (Sources/CLazyLibrary: libnbd, librbd and librados, libcrypto, libxml2,
# libarchive, librpm) are found by their sonames in the binary and become Recommends, with
# the package each soname comes from on this host (ldconfig, dpkg -S): the binary runs without
# them, and each feature says which package it needs. fuse3 (fusermount3, which unmounts for
# users and for auto_unmount) is recommended too.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.}"
mkdir -p "$out"
out=$(cd "$out" && pwd)

bin="${IMAGEMOUNT_BIN:-}"
if [ -z "$bin" ]; then
  swift build -c release --static-swift-stdlib --product imagemount >&2
  bin="$(swift build -c release --show-bin-path)/imagemount"
fi
bin=$(realpath "$bin")
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
if grep -qE '^(libswift|libFoundation|libdispatch|libBlocksRuntime)' <<<"$needed"; then
  echo "build-deb.sh: $bin needs the Swift runtime as shared libraries ($(grep -E '^(libswift|libFoundation)' <<<"$needed" | head -1), …), which no Debian package provides; build it with --static-swift-stdlib" >&2
  exit 1
fi

version=$("$bin" --version | awk 'NR == 1 { print $NF }')
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "build-deb.sh: '$version' (from $bin --version) is not a package version" >&2; exit 1; }
arch=$(dpkg --print-architecture)
name="imagemount_${version}_${arch}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
DESTDIR="$root" IMAGEMOUNT_BIN="$bin" ./scripts/install.sh /usr
# Debian policy 10.1: binaries are shipped stripped (the symbol table only; Swift's metadata
# sections stay).
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/imagemount"
gzip -9n "$root"/usr/share/man/man1/*.1

# The documentation a package must carry (policy 12.5, 12.7).
doc="$root/usr/share/doc/imagemount"
install -d "$doc"
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
# The Maintainer field and changelog signature: DEBFULLNAME and DEBEMAIL, as dch takes them.
maintainer="${DEBFULLNAME:-imagemount developers} <${DEBEMAIL:-imagemount-devel@example.org}>"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: imagemount
Comment: Built by scripts/build-deb.sh from commit $commit.

Files: *
Copyright: 2025-2026 the imagemount developers
License: unspecified
 The imagemount sources do not yet state a licence.
EOF
printf 'imagemount (%s) unstable; urgency=medium\n\n  * Built by scripts/build-deb.sh from commit %s.\n\n -- %s  %s\n' \
  "$version" "$commit" "$maintainer" "$when" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"
# lintian's uses-dpkg-database-directly matches the guest path inspect reads (a guest's
# /var/lib/dpkg/status, through imagemount's own filesystem drivers), not the host's database.
install -d "$root/usr/share/lintian/overrides"
printf '%s\n' '# inspect reads a guest image'"'"'s /var/lib/dpkg/status, never the host'"'"'s dpkg database' \
  'imagemount: uses-dpkg-database-directly [usr/bin/imagemount]' >"$root/usr/share/lintian/overrides/imagemount"
chmod 0644 "$root/usr/share/lintian/overrides/imagemount"

# Depends: dpkg-shlibdeps reads debian/control from where it runs.
mkdir -p "$stage/debian"
printf 'Source: imagemount\n\nPackage: imagemount\nArchitecture: any\n' >"$stage/debian/control"
shlibs=$(cd "$stage" && dpkg-shlibdeps -O -e"$root/usr/bin/imagemount" 2>"$stage/shlibdeps.log") || {
  cat "$stage/shlibdeps.log" >&2; exit 1; }
depends=${shlibs#shlibs:Depends=}

# Recommends: the sonames of the lazily loaded libraries (CLazyLibrary's LAZY_LIBRARY strings),
# which the binary does not list as NEEDED.
package_of() { # soname -> the package that installed it here
  local path candidate
  path=$(ldconfig -p | awk -v so="$1" '$1 == so { print $NF; exit }')
  [ -n "$path" ] || return 1
  local owner
  for candidate in "$path" "$(realpath "$path")" "${path#/usr}" "/usr$path"; do
    owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) || true
    if [ -n "$owner" ]; then echo "$owner"; return 0; fi
  done
  return 1
}
recommends=()
for soname in $(strings -a "$bin" | grep -xE 'lib[A-Za-z0-9_+-]+\.so\.[0-9]+' | sort -u); do
  grep -qxF "$soname" <<<"$needed" && continue
  package=$(package_of "$soname") || { echo "build-deb.sh: the binary loads $soname, which is not installed here: install it to build the package" >&2; exit 1; }
  recommends+=("$package")
done
recommends+=(fuse3)
recommends_line=$(printf '%s\n' "${recommends[@]}" | sort -u | paste -sd, | sed 's/,/, /g')

install -d "$root/DEBIAN"
(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
cat >"$root/DEBIAN/control" <<EOF
Package: imagemount
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --apparent-size "$root/usr" | cut -f1)
Depends: $depends
Recommends: $recommends_line
Section: admin
Priority: optional
Description: work with virtual machine disk images without booting them
 imagemount opens disk images (raw, qcow2, VMDK, VHD/VHDX, VDI, QED, NBD and
 Ceph RBD), finds their partitions, LVM volumes and filesystems (ext2/3/4, XFS,
 vfat, NTFS, ISO 9660), and mounts them with FUSE, prints, lists, copies and
 edits their files, and inspects the operating systems installed on them, in
 the manner of libguestfs's guestmount and virt-* tools.
EOF
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/$name.deb" >&2
echo "$out/$name.deb"
