// swift-tools-version:6.0
//
// libFuzzer targets for imagemount's parsers: a package of its own, so that neither `swift build`
// nor `swift test` of the main package sees them (they link libFuzzer's `main`, and need
// -sanitize=fuzzer). scripts/fuzz.sh builds them; see fuzz/README.md.
//
// The harnesses live in Tests/GuestFSTests/Fuzz (this package reaches them through the symlink
// Sources/FuzzHarnesses), so the unit test that replays fuzz/crashers runs the very same code.
import Foundation
import PackageDescription

/// One executable per parser; each name is also a folder under fuzz/crashers and fuzz/corpus.
let fuzzTargets = [
    "format-probe", "qcow2", "vpc", "vdi", "vhdx", "vmdk", "qcow", "qed", "parallels", "partitions", "lvm", "lvm-metadata",
    "luks", "luks2-json", "volume-probe", "ext", "journal", "vfat", "iso9660", "xfs", "xfs-log", "ntfs",
    "hive", "rbd-name", "nbd-block-status",
]

/// A path dependency's identity is its directory's name (the clone's, not "imagemount").
let mainPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "imagemount-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(
            name: "FuzzHarnesses",
            dependencies: [.product(name: "GuestFS", package: mainPackage)],
            path: "Sources/FuzzHarnesses"
        ),
        // The declaration of libFuzzer's driver entry (each target's main.swift calls it).
        .target(name: "CLibFuzzer", path: "Sources/CLibFuzzer"),
    ] + fuzzTargets.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzHarnesses", "CLibFuzzer"], path: "Sources/fuzz-\(name)")
    },
    swiftLanguageModes: [.v6]
)
