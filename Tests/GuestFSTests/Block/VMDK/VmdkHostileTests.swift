import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Damaged VMDK headers, tables and descriptors, built here by patching bytes of qemu-img's
/// images: a one-line error at open, or EIO for the damaged range only; never a crash.
@Suite struct VmdkHostileTests {
    /// A copy of fixture `name` in a fresh folder, patched by `patch`.
    static func damaged(_ name: String, _ patch: (inout [UInt8]) -> Void) throws -> (TempDir, String) {
        let f = try VmdkFixtures.get()
        let dir = try TempDir("imagemount-vmdk-hostile")
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: f.path(name))))
        patch(&bytes)
        let path = dir.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (dir, path)
    }

    static func put32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) { for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    static func put64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) { for i in 0..<8 { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    static func get32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
    static func get64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }

    /// Header patches each refused at open with one line naming the file.
    static let headerPatches: [(String, @Sendable (inout [UInt8]) -> Void)] = [
        ("no grain table entries", { put32(&$0, 44, 0) }),
        ("too many grain table entries", { put32(&$0, 44, 4096) }),
        ("grain not a power of two", { put64(&$0, 20, 3) }),
        ("huge grain", { put64(&$0, 20, 1 << 40) }),
        ("huge capacity", { put64(&$0, 12, 1 << 62) }),
        ("directory past the end", { put64(&$0, 56, 1 << 40) }),
        ("directory offset overflows", { put64(&$0, 56, .max - 1) }),
        ("unknown compression", { $0[77] = 9 }),
        ("version 4", { put32(&$0, 4, 4) }),
        ("no CID", { b in for i in 512..<1024 where b[i] == UInt8(ascii: "C") { b[i] = UInt8(ascii: "X") } }),
    ]

    @Test("damaged headers fail open with one line", arguments: headerPatches.indices)
    func damagedHeader(_ index: Int) throws {
        let (label, patch) = Self.headerPatches[index]
        let (dir, path) = try Self.damaged("mono.vmdk", patch)
        _ = dir
        do {
            let device = try ImageOpener.open(path: path, format: nil, writable: false)
            Issue.record("\(label): opened (size \(device.size))")
        } catch let e as ImageError {
            #expect(!e.description.contains("\n"), "\(label): \(e)")
            #expect(e.description.contains(path), "\(label): \(e)")
        }
    }

    @Test func damagedStreamFooterFailsOpen() throws {
        let (dir, path) = try Self.damaged("stream-footer.vmdk") { b in Self.put32(&b, b.count - 1536 + 12, 7) }
        _ = dir
        #expect(throws: ImageError.self) { try ImageOpener.open(path: path, format: nil, writable: false) }
    }

    @Test func damagedTableEntryFailsOnlyItsRange() throws {
        let f = try VmdkFixtures.get()
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: f.path("mono.vmdk"))))
        let gd = Int(Self.get64(original, 56)) * 512
        let gt = Int(Self.get32(original, gd)) * 512
        // Grain 0 (first GT) points far past the end of the file; the second GT's directory entry too.
        let (dir, path) = try Self.damaged("mono.vmdk") { b in
            Self.put32(&b, gt, 0x7FFF_FFF0)
            Self.put32(&b, gd + 4, 0x7FFF_FFF0)
        }
        _ = dir
        let device = try ImageOpener.open(path: path, format: nil, writable: false)
        #expect(throws: ImageError.self) { try device.readBytes(at: 0, count: 512) }
        // The second table maps 32 MiB on; the 5 MiB disk has one table only, so that entry is never read.
        let oracle = try f.oracle("mono.vmdk")
        #expect(try device.readBytes(at: 65536, count: 65536) == Array(oracle[65536..<131072]))
    }

    @Test func corruptCompressedGrainFailsOnlyItsRange() throws {
        let f = try VmdkFixtures.get()
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: f.path("stream.vmdk"))))
        // qemu-img's header names the directory; its first table's first entry is grain 0.
        let gd = Int(Self.get64(original, 56)) * 512
        let gt = Int(Self.get32(original, gd)) * 512
        let grain0 = Int(Self.get32(original, gt)) * 512
        let (dir, path) = try Self.damaged("stream.vmdk") { b in for i in (grain0 + 12)..<(grain0 + 40) { b[i] ^= 0x5A } }
        _ = dir
        let device = try ImageOpener.open(path: path, format: nil, writable: false)
        #expect(throws: ImageError.self) { try device.readBytes(at: 0, count: 512) }
        let oracle = try f.oracle("stream.vmdk")
        #expect(try device.readBytes(at: 65536, count: 65536) == Array(oracle[65536..<131072]))
    }

    @Test func parentLoopIsRefused() throws {
        let dir = try TempDir("imagemount-vmdk-loop")
        try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img create -q -f vmdk a.vmdk 1M && qemu-img create -q -f vmdk -b a.vmdk -F vmdk b.vmdk 1M")
        // Point a.vmdk's embedded descriptor at b.vmdk: a → b → a.
        var a = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("a.vmdk"))))
        let text = Array("parentFileNameHint=\"b.vmdk\"\n".utf8)
        let at = 512 + (a[512..<1536].firstIndex(of: 0).map { $0 - 512 } ?? 0)
        a.replaceSubrange(at..<(at + text.count), with: text)
        try Data(a).write(to: URL(fileURLWithPath: dir.file("a.vmdk")))
        do {
            _ = try ImageOpener.open(path: dir.file("b.vmdk"), format: nil, writable: false)
            Issue.record("opened a looping chain")
        } catch let e as ImageError {
            #expect(e.description.contains("loops"), "\(e)")
        }
    }

    @Test func descriptorNamingAnUnreadableExtentKindIsRefused() throws {
        let dir = try TempDir("imagemount-vmdk-kind")
        try Shell.check("cd \(Shell.quote(dir.path)) && printf 'version=1\\nCID=1\\nparentCID=ffffffff\\ncreateType=\"vmfsSparse\"\\nRW 2048 VMFSSPARSE \"x-delta.vmdk\"\\n' > d.vmdk && head -c 4096 /dev/zero > x-delta.vmdk")
        #expect(throws: ImageError.self) { try ImageOpener.open(path: dir.file("d.vmdk"), format: nil, writable: false) }
        try Shell.check("cd \(Shell.quote(dir.path)) && printf 'version=1\\nCID=1\\nparentCID=ffffffff\\ncreateType=\"monolithicSparse\"\\nRW 2048 FLAT \"x-delta.vmdk\" 0\\n' > e.vmdk")
        #expect(throws: ImageError.self) { try ImageOpener.open(path: dir.file("e.vmdk"), format: nil, writable: false) }
    }

    /// The fuzz harness over the committed seeds and seeded random byte flips of each: every
    /// input ends in an error or a read, never a trap.
    @Test func fuzzHarnessSurvivesMutatedSeeds() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/corpus/vmdk")
        let seeds = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
        #expect(!seeds.isEmpty)
        var rng = SplitMix64(seed: 0x7D3C)
        for seed in seeds {
            let bytes = Array(try Data(contentsOf: corpus.appendingPathComponent(seed)))
            FuzzHarness.run("vmdk", bytes)
            for _ in 0..<150 {
                var mutated = bytes
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    // Mostly the header and descriptor, sometimes anywhere (tables, grains).
                    let limit = Bool.random(using: &rng) ? min(mutated.count, 2048) : mutated.count
                    mutated[Int.random(in: 0..<limit, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                FuzzHarness.run("vmdk", mutated)
            }
        }
    }
}
