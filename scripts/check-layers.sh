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
check '^import (CNtfs3g|SystemNtfs3g)$' 'Sources/GuestFS/NTFS/' 'libntfs-3g is imported outside GuestFS/NTFS'
check '^import (SystemZlib|SystemZstd|SystemCrypto|CCrypto)$' 'Sources/GuestFS/(Block|Disk)/' 'zlib/zstd/libcrypto imported outside Block/Disk'
check '^import CNbd$' 'Sources/GuestFS/Block/NBD/' 'libnbd is imported outside GuestFS/Block/NBD'
check '^import CArchive$' 'Sources/ImageMount/Tar/' 'libarchive is imported outside ImageMount/Tar'
check '^import SystemHivex$' 'Sources/GuestFS/Inspect/Hive.swift' 'hivex is imported outside GuestFS/Inspect/Hive.swift'
check '^import CRpm$' 'Sources/GuestFS/Inspect/RPMDatabase.swift' 'librpm is imported outside GuestFS/Inspect/RPMDatabase.swift'
check '^import CRbd$' 'Sources/GuestFS/Block/RBD/' 'librbd/librados are imported outside GuestFS/Block/RBD'
check '^import (ArgumentParser|ImageMount|CFuse)$' 'Sources/ImageMount/' 'GuestFS reaches up into the command line'
# GuestFS is one SwiftPM target per layer (Package.swift): the target graph itself refuses an
# upward or sideways import inside it. What the graph cannot say is checked here.
# Only the guest facade (its driver registry) imports the drivers; the command line, inspection
# and the layers below never do.
bad=$(grep -rlE '^(@testable )?import GuestFS(Ext|Vfat|ISO9660|XFS|NTFS)$' Sources --include='*.swift' \
        | grep -vE '^Sources/GuestFS/(Guest|Ext|Vfat|ISO9660|XFS|NTFS)/' || true)
if [ -n "$bad" ]; then echo "layering: a filesystem driver imported above the guest facade: $bad"; fail=1; fi
# Each target's folder imports only the GuestFS targets Package.swift lets it depend on.
allowed() { # folder, allowed GuestFS modules (regex)
  bad=$(grep -rhE '^import GuestFS[A-Za-z0-9]*$' "Sources/GuestFS/$1" --include='*.swift' | sort -u \
          | grep -vE "^import ($2)$" || true)
  if [ -n "$bad" ]; then echo "layering: Sources/GuestFS/$1 imports $(echo ${bad//import /} | tr '\n' ' ')"; fail=1; fi
}
allowed Block 'NONE'
allowed Disk 'GuestFSBlock'
allowed Filesystem 'GuestFSBlock'
for driver in Ext Vfat ISO9660 XFS NTFS; do allowed $driver 'GuestFSBlock|GuestFSFilesystem'; done
allowed Guest 'GuestFSBlock|GuestFSDisk|GuestFSFilesystem|GuestFSExt|GuestFSVfat|GuestFSISO9660|GuestFSXFS|GuestFSNTFS'
allowed Inspect 'GuestFSBlock|GuestFSDisk|GuestFSFilesystem|GuestFS'
# Above the drivers nothing names a driver's types; the registry (GuestFS/Guest/FilesystemRegistry.swift)
# is the one place that lists them.
bad=$(grep -rlE '\b(Ext2[A-Za-z]*|ExtFilesystem|Vfat[A-Za-z]*|ISO9660[A-Za-z]*|XFS[A-Z][a-z][A-Za-z]*|NTFS[A-Z][a-z][A-Za-z]*)\b' Sources/ImageMount Sources/GuestFS/Inspect \
        Sources/GuestFS/Guest --include='*.swift' | grep -v 'Sources/GuestFS/Guest/FilesystemRegistry.swift' || true)
if [ -n "$bad" ]; then echo "layering: a driver's type named above the drivers: $bad"; fail=1; fi
bad=$(grep -rlE 'fatalError\(|try!' Sources --include='*.swift' || true)
if [ -n "$bad" ]; then echo "style: fatalError/try! in product code: $bad"; fail=1; fi
exit $fail
