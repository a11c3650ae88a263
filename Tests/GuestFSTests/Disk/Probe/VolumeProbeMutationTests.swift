import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// Tests `Sources/GuestFS/Disk/Probe/` against blkid on damaged images: each mkfs-made image has
/// bytes of its superblocks, directories and descriptors overwritten at random (a fixed seed, so
/// a failure is repeatable), and the probe must say what `blkid -p` says about every mutant:
/// the same TYPE (or none), LABEL and UUID. Values holding bytes that are not printable ASCII are
/// left out of the comparison (blkid prints raw bytes, escaped; we decode them as UTF-8).
@Suite struct VolumeProbeMutationTests {
    /// SplitMix64: a small deterministic generator.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// blkid's TYPE, LABEL, UUID from `-o export` (backslash escapes undone), and whether it
    /// called the result ambivalent.
    static func blkid(_ path: String) throws -> [String: String] {
        let out = try Shell.run("blkid -p -o export \(Shell.quote(path)) 2>&1")
        var values: [String: String] = [:]
        for line in out.text.split(separator: "\n") {
            if line.contains("ambivalent result") { values["ambivalent"] = "yes" }
            guard let eq = line.firstIndex(of: "="), ["TYPE", "LABEL", "UUID"].contains(String(line[..<eq])) else { continue }
            var value = "", escaped = false
            for c in line[line.index(after: eq)...] {
                if !escaped && c == "\\" { escaped = true; continue }
                value.append(c); escaped = false
            }
            values[String(line[..<eq])] = value
        }
        return values
    }

    static func printable(_ s: String?) -> Bool {
        s.map { $0.unicodeScalars.allSatisfy { (0x20 ..< 0x7F).contains($0.value) } } ?? true
    }

    /// (image name, size, mkfs command on $F, regions to damage as (offset, length)).
    static let images: [(String, String, String, [(Int, Int)])] = [
        ("ext4", "8M", "mkfs.ext4 -q -F -L lab $F", [(1024, 256)]),
        ("ext2", "8M", "mkfs.ext2 -q -F -L lab $F", [(1024, 256)]),
        ("xfs", "300M", "mkfs.xfs -q -f -L lab $F", [(0, 160)]),
        ("btrfs", "128M", "mkfs.btrfs -q -f -L lab $F", [(0x10000, 0x230)]),
        ("ntfs", "16M", "mkntfs -q -F -f -L lab $F 2>/dev/null", [(0, 84)]),
        ("fat12", "4M", "mkfs.vfat -F 12 -n LAB $F >/dev/null", [(0, 512), (0x600, 64)]),
        ("fat32", "64M", "mkfs.vfat -F 32 -n LAB $F >/dev/null", [(0, 512), (512, 512)]),
        ("exfat", "16M", "mkfs.exfat -L lab $F >/dev/null", [(0, 512)]),
        ("udf", "16M", "mkudffs --label=lab $F >/dev/null", [(0x8000, 8), (0x8800, 8), (0x9000, 8), (0x20000, 32), (0xC000, 440), (0xC200, 440)]),
        ("iso", "0", "mkdir -p t && echo x > t/a && genisoimage -quiet -V lab -J -o $F t", [(0x8000, 900), (0x8800, 900)]),
        ("swap", "1M", "mkswap -L lab $F >/dev/null 2>&1", [(1024, 200), (4086, 10)]),
        ("luks2", "16M", "printf pw | cryptsetup luksFormat -q --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --label lab --key-file - $F 2>/dev/null", [(0, 512), (0x4000, 300)]),
    ]
    static let mutantsPerImage = 25

    @Test(arguments: images.map(\.0)) func mutantsAgreeWithBlkid(name: String) throws {
        guard let (_, size, command, regions) = Self.images.first(where: { $0.0 == name }) else { return }
        let dir = try TempDir("imagemount-probe-mutants")
        let path = dir.file(name + ".img")
        let status = try Shell.run("F=\(Shell.quote(path)); cd \(Shell.quote(dir.path)) && truncate -s \(size) $F && \(command)").status
        guard status == 0 else { Issue.record("\(name): mkfs failed (scripts/install-deps.sh installs the tools)"); return }
        // The first 2 MiB hold every structure above; the mutants are that long.
        let original = try RawImage(path: path, writable: false)
        let keep = Int(min(original.size, 2 << 20))
        let pristine = try original.readBytes(at: 0, count: keep)
        var random = Generator(state: UInt64(name.utf8.reduce(5381) { $0 &* 33 &+ Int($1) }))
        let mutant = dir.file("mutant.img")
        for index in 0 ..< Self.mutantsPerImage {
            var bytes = pristine
            for _ in 0 ..< [1, 1, 2, 3, 8][random.below(5)] {
                let (offset, length) = regions[random.below(regions.count)]
                let at = offset + random.below(length)
                guard at < bytes.count else { continue }
                bytes[at] = [0, 0xFF, 0x20, UInt8(random.below(256)), bytes[at] ^ UInt8(1 << random.below(8))][random.below(5)]
            }
            try Data(bytes).write(to: URL(fileURLWithPath: mutant))
            let expected = try Self.blkid(mutant)
            let content = VolumeProbe.probe(try RawImage(path: mutant, writable: false))
            let what = "\(name) mutant \(index): ours \(content), blkid \(expected)"
            #expect(content.type == expected["TYPE"], "\(what)")
            #expect(!content.ambivalentTypes.isEmpty == (expected["ambivalent"] != nil), "\(what)")
            if Self.printable(expected["LABEL"]) && Self.printable(content.label) { #expect(content.label == expected["LABEL"], "\(what)") }
            if Self.printable(expected["UUID"]) && Self.printable(content.uuid) { #expect(content.uuid == expected["UUID"], "\(what)") }
        }
    }
}
