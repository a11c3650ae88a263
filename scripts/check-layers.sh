#!/usr/bin/env bash
# STYLE.md rule 2: a layer uses only the layers below it. The C shims are imported in one place each.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() { # pattern, allowed-directory, message
  bad=$(grep -rlE "$1" Sources --include='*.swift' | grep -vE "^$2" || true)
  if [ -n "$bad" ]; then echo "layering: $3: $bad"; fail=1; fi
}
check '^import (CFuse|SystemFuse3)$' 'Sources/ImageMount/FUSE/' 'libfuse is imported outside ImageMount/FUSE'
check '^import (CExt2fs|SystemExt2fs)$' 'Sources/GuestFS/Ext/' 'libext2fs is imported outside GuestFS/Ext'
check '^import (SystemZlib|SystemZstd|SystemCrypto)$' 'Sources/GuestFS/(Block|Disk)/' 'zlib/zstd/libcrypto imported outside Block/Disk'
check '^import (ArgumentParser|ImageMount|CFuse)$' 'Sources/ImageMount/' 'GuestFS reaches up into the command line'
# The filesystem protocol (issue 14): above the drivers nothing names a driver's types; the
# registry (GuestFS/Filesystem/FilesystemRegistry.swift) is the one place that lists them.
bad=$(grep -rlE '\b(Ext2[A-Za-z]*|ExtFilesystem|Vfat[A-Za-z]*|ISO9660[A-Za-z]*|XFS[A-Z][a-z][A-Za-z]*)\b' Sources/ImageMount Sources/GuestFS/Inspect \
        Sources/GuestFS/MountTree*.swift Sources/GuestFS/Guest.swift Sources/GuestFS/GuestName.swift --include='*.swift' || true)
if [ -n "$bad" ]; then echo "layering: a driver's type named above the drivers: $bad"; fail=1; fi
bad=$(grep -rlE '\b(Ext2[A-Za-z]*|ExtFilesystem|Vfat[A-Za-z]*|ISO9660[A-Za-z]*|XFS[A-Z][a-z][A-Za-z]*)\b' Sources/GuestFS/Block Sources/GuestFS/Disk --include='*.swift' || true)
if [ -n "$bad" ]; then echo "layering: the block or disk layer reaches up into a filesystem driver: $bad"; fail=1; fi
bad=$(grep -lE '\b(Ext2[A-Za-z]*|Vfat[A-Za-z]*|ISO9660[A-Za-z]*|XFS[A-Z][a-z][A-Za-z]*)\b' $(ls Sources/GuestFS/Filesystem/*.swift | grep -v FilesystemRegistry.swift) || true)
if [ -n "$bad" ]; then echo "layering: the filesystem protocol names a driver: $bad"; fail=1; fi
bad=$(grep -rlE 'fatalError\(|try!' Sources --include='*.swift' || true)
if [ -n "$bad" ]; then echo "style: fatalError/try! in product code: $bad"; fail=1; fi
exit $fail
