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
        .library(name: "GuestFS", targets: ["GuestFS"]),
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
        .systemLibrary(name: "SystemXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "SystemSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // glibc headers Swift's Glibc module leaves out (xattrs, makedev); no library to link.
        .systemLibrary(name: "SystemHostIO"),

        // Thin C shims: only what Swift cannot express (see each header's opening comment).
        .target(name: "CFuse", dependencies: ["SystemFuse3"]),
        .target(name: "CExt2fs", dependencies: ["SystemExt2fs"], linkerSettings: [.linkedLibrary("com_err")]),

        .target(
            name: "GuestFS",
            dependencies: [
                "CExt2fs", "SystemZlib", "SystemZstd", "SystemCrypto", "SystemArgon2", "SystemXML2",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "ImageMount",
            dependencies: [
                "GuestFS", "CFuse", "SystemHostIO", "SystemSeccomp", "SystemXML2",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),

        // Measuring tool for bench/qcow2-read.sh: reads an image end to end through ImageOpener.
        .executableTarget(
            name: "qcow2-bench",
            dependencies: ["GuestFS", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/Qcow2Bench"
        ),

        // Test tool for the qcow2 crash tests: applies a script of writes, killed at random points.
        .executableTarget(
            name: "qcow2-crash-writer",
            dependencies: ["GuestFS", .product(name: "SystemPackage", package: "swift-system")],
            path: "Sources/Qcow2CrashWriter"
        ),

        .target(name: "TestSupport", dependencies: ["GuestFS", "SystemCrypto"], path: "Tests/TestSupport"),
        .testTarget(name: "GuestFSTests", dependencies: ["GuestFS", "TestSupport"]),
        .testTarget(name: "ImageMountTests", dependencies: ["ImageMount", "GuestFS", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
