import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing
import TestSupport

/// Damaged ISO images, the damage made here on a real xorriso image so that it is visible in the
/// test: every case ends in served entries or a typed error, never a trap or a hang.
@Suite(.serialized) struct ISO9660HostileTests {
    /// A Rock Ridge image of a small tree: a/sub/inner.txt, a directory of 120 files (several
    /// directory sectors), a 180-byte name (its NM continues in a CE area), a symlink.
    static let base: [UInt8] = {
        guard (try? ISO9660Fixtures.makeTree()) != nil else { return [] }
        let dir = ISO9660Fixtures.scratch.path + "/hostile-src"
        let image = ISO9660Fixtures.scratch.path + "/hostile.iso"
        let made = try? Shell.check("""
            set -e; rm -rf \(Shell.quote(dir)); mkdir -p \(Shell.quote(dir))/a/sub \(Shell.quote(dir))/many; cd \(Shell.quote(dir))
            echo inner > a/sub/inner.txt; echo top > top.txt; ln -s top.txt link
            touch "$(head -c 180 /dev/zero | tr '\\0' n)"
            i=0; while [ $i -lt 120 ]; do echo $i > many/file-with-a-longish-name-$i; i=$((i+1)); done
            xorriso -as mkisofs -quiet -R -o \(Shell.quote(image)) . 2>/dev/null
            """)
        guard made != nil, let data = FileManager.default.contents(atPath: image) else { return [] }
        return [UInt8](data)
    }()

    /// Opens `bytes` with damage reports collected.
    func open(_ bytes: [UInt8]) throws -> (ISO9660Filesystem, Locked<[String]>) {
        let log = Locked<[String]>([])
        let fs = try ISO9660Filesystem(device: FuzzDevice(bytes: bytes, name: "/hostile.iso"),
                                       damageLog: { line in log.withValue { $0.append(line) } })
        return (fs, log)
    }

    /// The offset of the directory record whose ISO file identifier is `identifier` (xorriso's
    /// upper-case ISO names), found by its identifier-length byte at record + 32.
    func record(_ identifier: String, in bytes: [UInt8]) throws -> Int {
        let id = Array(identifier.utf8)
        var i = 16 * 2048 + 2048
        while i + 33 + id.count < bytes.count {
            if bytes[i + 32] == UInt8(id.count), Array(bytes[(i + 33) ..< (i + 33 + id.count)]) == id, bytes[i] >= 34, bytes[i + 25] & 2 != 0 || id.contains(0x3B) {
                return i
            }
            i += 1
        }
        throw ImageError(reason: "no record \(identifier)")
    }

    func setBoth32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
        for k in 0..<4 {
            bytes[offset + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k)))
            bytes[offset + 7 - k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k)))
        }
    }

    @Test func theUndamagedBaseReads() throws {
        let (fs, log) = try open(Self.base)
        let tree = try ISO9660Walk.walk(fs)
        #expect(tree[Array("many".utf8)] != nil)
        #expect(tree.keys.filter { $0.starts(with: Array("many/".utf8)) }.count == 120)
        #expect(tree[Array("a/sub/inner.txt".utf8)] != nil)
        #expect(tree.keys.contains { $0.count == 180 })
        #expect(log.value.isEmpty)
    }

    /// a/sub's record points at the root directory's extent: a loop, skipped and reported.
    @Test func directoryLoopIsSkipped() throws {
        var bytes = Self.base
        let root = ISO9660Bytes(Array(bytes[(16 * 2048 + 156) ..< (16 * 2048 + 190)])).u32both(2)!
        let sub = try record("SUB", in: bytes)
        setBoth32(&bytes, at: sub + 2, root)
        let (fs, log) = try open(bytes)
        let tree = try ISO9660Walk.walk(fs)
        #expect(tree[Array("a/sub".utf8)] == nil)
        #expect(tree[Array("top.txt".utf8)] != nil)
        #expect(log.value.contains { $0.contains("loop") })
        // And pointing at its own parent.
        var again = Self.base
        let a = try record("A", in: again)
        setBoth32(&again, at: sub + 2, ISO9660Bytes(Array(again[a ..< a + 34])).u32both(2)!)
        let (fs2, log2) = try open(again)
        #expect(try ISO9660Walk.walk(fs2)[Array("a/sub".utf8)] == nil)
        #expect(!log2.value.isEmpty)
    }

    /// A record in the first sector of many/ has a bad length: that sector loses its entries from
    /// there on, the other sectors of the directory are listed.
    @Test func badDirectorySectorLosesOnlyItsEntries() throws {
        var bytes = Self.base
        let many = try record("MANY", in: bytes)
        let extent = Int(ISO9660Bytes(Array(bytes[many ..< many + 34])).u32both(2)!) * 2048
        let dot = Int(bytes[extent]), dotdot = Int(bytes[extent + dot])
        bytes[extent + dot + dotdot] = 20   // below the 34-byte minimum
        let (fs, log) = try open(bytes)
        let node = try #require(try fs.lookup(fs.rootNode, Array("many".utf8)))
        let entries = try fs.entries(node)
        #expect(entries.count > 0 && entries.count < 120)
        #expect(log.value.contains { $0.contains("sector") })
        // A directory extent past the end of the device fails that directory only.
        var past = Self.base
        setBoth32(&past, at: many + 2, UInt32(past.count / 2048 + 10))
        let (fs2, _) = try open(past)
        let node2 = try #require(try fs2.lookup(fs2.rootNode, Array("many".utf8)))
        #expect(throws: ImageError.self) { try fs2.entries(node2) }
        #expect(try fs2.lookup(fs2.rootNode, Array("top.txt".utf8)) != nil)
    }

    /// A continuation area starts with a CE pointing at itself: the chain stops after
    /// RR_MAX_CE_ENTRIES continuations. xorriso puts the root's ER in one (met at open) and the
    /// long name's NM in another (met when the root is listed).
    @Test func continuationLoopEnds() throws {
        // The CE entries (SUSP 5.1: "CE", 28, 1, block, offset, length) in the image.
        var found: [Int] = []
        var i = 16 * 2048
        while i + 28 < Self.base.count {
            if Self.base[i] == 0x43, Self.base[i + 1] == 0x45, Self.base[i + 2] == 28, Self.base[i + 3] == 1 { found.append(i) }
            i += 1
        }
        try #require(found.count >= 2)
        for (n, ce) in found.prefix(2).enumerated() {
            var bytes = Self.base
            let d = ISO9660Bytes(Array(bytes[(ce + 4) ..< (ce + 28)]))
            let area = Int(d.u32both(0)!) * 2048 + Int(d.u32both(8)!)
            bytes.replaceSubrange(area ..< area + 4, with: [0x43, 0x45, 28, 1])
            setBoth32(&bytes, at: area + 4, d.u32both(0)!)
            setBoth32(&bytes, at: area + 12, d.u32both(8)!)
            setBoth32(&bytes, at: area + 20, 28)
            let (fs, log) = try open(bytes)
            let tree = try ISO9660Walk.walk(fs)
            #expect(tree[Array("top.txt".utf8)] != nil)
            #expect(log.value.contains { $0.contains("continuation") }, "CE \(n)")
        }
    }

    /// A file whose record claims 4 GiB at the last block: attributes work, reads fail with EIO.
    @Test func fileDataPastTheEndIsAnError() throws {
        var bytes = Self.base
        let top = try record("TOP.TXT;1", in: bytes)
        setBoth32(&bytes, at: top + 2, UInt32(bytes.count / 2048 - 1))
        setBoth32(&bytes, at: top + 10, 0xFFFF_FFFF)
        let (fs, _) = try open(bytes)
        let node = try #require(try fs.lookup(fs.rootNode, Array("top.txt".utf8)))
        #expect(try fs.attributes(node).size == 0xFFFF_FFFF)
        let file = try fs.openFile(node)
        var buffer = [UInt8](repeating: 0, count: 8192)
        do {
            _ = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
            Issue.record("read past the end succeeded")
        } catch let e as ImageError { #expect(e.errno == .ioError) }
    }

    /// Every truncation of the image on a sector boundary: open fails or the walk ends.
    @Test func truncatedImagesNeverTrap() throws {
        let bytes = Self.base
        try #require(!bytes.isEmpty)
        var opened = 0
        for sectors in stride(from: 0, through: bytes.count / 2048, by: 3) {
            let cut = Array(bytes.prefix(sectors * 2048 + (sectors % 2) * 100))
            guard let (fs, _) = try? open(cut) else { continue }
            opened += 1
            _ = try? ISO9660Walk.walk(fs)
        }
        #expect(opened > 0)
    }

    /// Random bytes over the metadata (volume descriptors, path tables, directories, CE areas)
    /// through the fuzz harness: a fixed seed, so a failure is repeatable.
    @Test func mutatedMetadataNeverTraps() throws {
        let bytes = Self.base
        try #require(bytes.count > 40 * 2048)
        var rng = SplitMix64(seed: 9660)
        for _ in 0..<400 {
            var mutated = bytes
            for _ in 0..<(1 + Int(rng.next() % 16)) {
                let at = 16 * 2048 + Int(rng.next() % UInt64(40 * 2048 - 16 * 2048))
                mutated[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            FuzzHarness.run("iso9660", mutated)
        }
    }
}
