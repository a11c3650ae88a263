// swift-tools-version:6.0
//
// imagemount: open raw and qcow2 virtual-machine disk images, find their
// partitions and ext2/3/4 filesystems, and work with the guest's files
// without booting anything. See README.md and ../shared/DESIGN.md.
import PackageDescription

let package = Package(
    name: "imagemount",
    platforms: [.macOS(.v13)],
    products: [
        // Declared as a product so `swift package generate-manual` renders its man pages.
        .executable(name: "imagemount", targets: ["ImageMount"]),
        .library(name: "GuestFS", targets: ["GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem", "GuestFSExt", "GuestFSVfat",
                                            "GuestFSISO9660", "GuestFSXFS", "GuestFSNTFS", "GuestFS", "GuestFSInspect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // System libraries, found through pkg-config (DESIGN.md §1).
        .systemLibrary(name: "SystemFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "SystemExt2fs", pkgConfig: "ext2fs", providers: [.apt(["libext2fs-dev", "comerr-dev"])]),
        .systemLibrary(name: "SystemZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "SystemZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "SystemCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "SystemArgon2", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        .systemLibrary(name: "SystemNtfs3g", pkgConfig: "libntfs-3g", providers: [.apt(["ntfs-3g-dev"])]),
        .systemLibrary(name: "SystemSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // Windows registry hives (Inspect/Hive.swift: Windows inspection); only that file imports it.
        .systemLibrary(name: "SystemHivex", pkgConfig: "hivex", providers: [.apt(["libhivex-dev"])]),
        // glibc headers Swift's Glibc module leaves out (xattrs, makedev); no library to link.
        .systemLibrary(name: "SystemHostIO"),

        // Thin C shims: only what Swift cannot express (see each header's opening comment).
        .target(name: "CFuse", dependencies: ["SystemFuse3"]),
        .target(name: "CExt2fs", dependencies: ["SystemExt2fs"], linkerSettings: [.linkedLibrary("com_err")]),
        .target(name: "CNtfs3g", dependencies: ["SystemNtfs3g"]),
        // NBD client (Block/NBD: `-a nbd://…`): libnbd dlopened on first use, not linked, so that
        // GnuTLS and its eight libraries load only for NBD URIs (the header says why). Only
        // Block/NBD imports it (scripts/check-layers.sh); libnbd.h comes from libnbd-dev.
        // The dlopen loader the lazily loaded library shims below share (its header says how).
        .target(name: "CLazyLibrary"),
        .target(name: "CNbd", dependencies: ["CLazyLibrary"]),
        // Ceph RBD client (Block/RBD: `-a rbd:POOL/IMAGE`): librbd and librados dlopened on the
        // first rbd: image, not linked (the header says why); only Block/RBD imports it.
        .target(name: "CRbd", dependencies: ["CLazyLibrary"]),
        // libcrypto, dlopened when a digest or cipher is first needed, not linked (the header
        // says why); SystemCrypto links it for the tests' own fixtures only.
        .target(name: "CCrypto", dependencies: ["CLazyLibrary"]),
        // libxml2 (domain XML, inspect --xpath), dlopened on first use, not linked (the header
        // says why). A pkg-config module would link it, so its headers are reached through
        // include/libxml, a link to where libxml2-dev puts them (`pkg-config --cflags libxml-2.0`).
        .target(name: "CXML2", dependencies: ["CLazyLibrary"]),
        // libarchive (tar-in, tar-out: ImageMount/Tar), dlopened when they start, not linked (the
        // header says why); only ImageMount/Tar imports it (scripts/check-layers.sh).
        .target(name: "CArchive", dependencies: ["CLazyLibrary"]),
        .target(name: "CEdit", dependencies: ["CLazyLibrary"]),
        // librpm (inspect: an RPM guest's applications), dlopened when inspect starts, not linked
        // (the header says why); only GuestFS/Inspect/RPMDatabase.swift imports it.
        .target(name: "CRpm", dependencies: ["CLazyLibrary"]),

        // GuestFS, one target per layer (STYLE.md rule 2, as swift-nio splits NIOCore and
        // NIOPosix): a target depends only on the layers below it, so an upward or sideways
        // import does not compile. Bottom up:
        //   GuestFSBlock       image sources and formats (raw, qcow2, LUKS): the block device protocol
        //   GuestFSDisk        partition tables, LVM, the volume probe
        //   GuestFSFilesystem  the filesystem protocol every driver implements
        //   GuestFSExt, GuestFSVfat, GuestFSISO9660, GuestFSXFS, GuestFSNTFS   one target per driver
        //   GuestFS            the guest: its devices, the driver registry, the mount tree
        //   GuestFSInspect     inspection (-i): operating systems, fstab, applications
        .target(
            name: "GuestFSBlock",
            dependencies: ["SystemZlib", "SystemZstd", "CCrypto", "SystemArgon2", "CNbd", "CRbd", "SystemHostIO",
                           .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/GuestFS/Block"
        ),
        .target(name: "GuestFSDisk", dependencies: ["GuestFSBlock", "SystemZlib"], path: "Sources/GuestFS/Disk"),
        .target(
            name: "GuestFSFilesystem",
            dependencies: ["GuestFSBlock", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/GuestFS/Filesystem"
        ),
        .target(
            name: "GuestFSExt",
            dependencies: ["GuestFSBlock", "GuestFSFilesystem", "CExt2fs", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/GuestFS/Ext"
        ),
        .target(
            name: "GuestFSVfat",
            dependencies: ["GuestFSBlock", "GuestFSFilesystem", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/GuestFS/Vfat"
        ),
        .target(name: "GuestFSISO9660", dependencies: ["GuestFSBlock", "GuestFSFilesystem"], path: "Sources/GuestFS/ISO9660"),
        .target(name: "GuestFSXFS", dependencies: ["GuestFSBlock", "GuestFSFilesystem"], path: "Sources/GuestFS/XFS"),
        .target(name: "GuestFSNTFS", dependencies: ["GuestFSBlock", "GuestFSFilesystem", "CNtfs3g"], path: "Sources/GuestFS/NTFS"),
        .target(
            name: "GuestFS",
            dependencies: [
                "GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem",
                "GuestFSExt", "GuestFSVfat", "GuestFSISO9660", "GuestFSXFS", "GuestFSNTFS",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/GuestFS/Guest"
        ),
        .target(
            name: "GuestFSInspect",
            dependencies: ["GuestFS", "GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem", "CXML2", "SystemHivex", "CRpm",
                           .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/GuestFS/Inspect"
        ),
        .executableTarget(
            name: "ImageMount",
            dependencies: [
                "GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem", "GuestFS", "GuestFSInspect",
                "CFuse", "SystemHostIO", "SystemSeccomp", "CXML2", "CArchive", "CEdit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),

        // Measuring tool for bench/qcow2-read.sh: reads an image end to end through ImageOpener.
        .executableTarget(
            name: "qcow2-bench",
            dependencies: ["GuestFSBlock", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/Qcow2Bench"
        ),

        // Test tool for the qcow2 crash tests: applies a script of writes, killed at random points.
        .executableTarget(
            name: "qcow2-crash-writer",
            dependencies: ["GuestFSBlock", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/Qcow2CrashWriter"
        ),

        .target(name: "TestSupport", dependencies: ["GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem", "GuestFSExt", "GuestFSVfat", "GuestFSISO9660", "GuestFSXFS", "GuestFSNTFS", "GuestFS", "GuestFSInspect", "SystemCrypto"], path: "Tests/TestSupport"),
        .testTarget(name: "GuestFSTests", dependencies: ["GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem", "GuestFSExt", "GuestFSVfat", "GuestFSISO9660", "GuestFSXFS", "GuestFSNTFS", "GuestFS", "GuestFSInspect", "TestSupport"]),
        .testTarget(name: "ImageMountTests", dependencies: ["ImageMount", "GuestFSBlock", "GuestFSDisk", "GuestFSFilesystem", "GuestFSExt", "GuestFSVfat", "GuestFSISO9660", "GuestFSXFS", "GuestFSNTFS", "GuestFS", "GuestFSInspect", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
