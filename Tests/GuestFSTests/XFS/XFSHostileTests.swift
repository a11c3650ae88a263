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

/// Damaged copies of a real image, each damage made here in the test: a bad inode CRC, a bad
/// bmbt block, a loop in the bmbt, an extent past its AG, huge and negative sizes. Each fails
/// the file that needs the damaged block with EIO and a message naming it; every other file
/// still reads as the kernel showed it.
@Suite(.serialized) struct XFSHostileTests {
    /// A copy of the v5 default image with `damage` applied to its bytes through the driver's
    /// own view of where things are.
    static func damaged(_ name: String, _ damage: (XFSFilesystem, XFSFixtures.Image, FileHandle) throws -> Void) throws -> (XFSFilesystem, XFSFixtures.Image, TempDir) {
        let image = try XFSFixtures.image("v5-default")
        let scratch = try TempDir("xfs-hostile")
        let copy = scratch.file(name + ".img")
        try Shell.check("cp --sparse=always \(Shell.quote(image.path)) \(Shell.quote(copy))")
        let original = try XFSFixtures.open(image)
        let handle = try #require(FileHandle(forUpdatingAtPath: copy))
        try damage(original, image, handle)
        try handle.close()
        var moved = image
        moved.path = copy
        let messages = Locked<[String]>([])
        let fs = try XFSFilesystem(device: RawImage(path: copy, writable: false), damageLog: { m in messages.withValue { $0.append(m) } })
        return (fs, moved, scratch)
    }

    static func write(_ handle: FileHandle, _ bytes: [UInt8], at offset: UInt64) throws {
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(bytes))
    }

    static func read(_ handle: FileHandle, at offset: UInt64, count: Int) throws -> [UInt8] {
        try handle.seek(toOffset: offset)
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    /// Edits inode `ino` (raw bytes in, raw bytes out) and re-stamps its CRC.
    static func editInode(_ fs: XFSFilesystem, _ handle: FileHandle, _ ino: UInt64, restamp: Bool = true, _ edit: (inout [UInt8]) -> Void) throws {
        let at = try #require(fs.geometry.inodeOffset(ino, dataBlocks: fs.superblock.dataBlocks))
        var raw = try read(handle, at: at, count: Int(fs.geometry.inodeSize))
        edit(&raw)
        if restamp { stamp(&raw, crcOffset: XFSInode.crcOffset) }
        try write(handle, raw, at: at)
    }

    static func stamp(_ raw: inout [UInt8], crcOffset: Int) {
        let crc = XFSChecksum.compute(raw, crcOffset: crcOffset)
        for i in 0 ..< 4 { raw[crcOffset + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }

    static func put(_ raw: inout [UInt8], _ offset: Int, _ width: Int, _ value: UInt64) {
        for i in 0 ..< width { raw[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(width - 1 - i))) }
    }

    /// The files other than `except` read as the kernel showed them.
    static func othersStillRead(_ fs: XFSFilesystem, _ image: XFSFixtures.Image, except: String) throws {
        var read = 0
        for k in image.entries where k.bytes != nil && k.path != except {
            let same = try XFSFixtures.readAll(fs.openFile(k.ino)) == k.bytes
            #expect(same, "\(k.path)")
            read += 1
        }
        #expect(read >= 8)
    }

    static func ioError(_ body: () throws -> Void) -> ImageError? {
        do { try body(); return nil } catch let e as ImageError { return e } catch { return nil }
    }

    @Test func badInodeCRCFailsThatInodeOnly() throws {
        let (fs, image, _) = try Self.damaged("inode-crc") { fs, image, h in
            try Self.editInode(fs, h, #require(image.entry("frag.bin")).ino, restamp: false) { $0[41] ^= 0x40 }
        }
        let ino = try #require(image.entry("frag.bin")).ino
        let e = Self.ioError { _ = try fs.attributes(ino) }
        #expect(e?.errno == .ioError)
        #expect(e?.structure == "inode \(ino)")
        #expect(e?.reason == "CRC mismatch")
        try Self.othersStillRead(fs, image, except: "frag.bin")
    }

    /// The first leaf of frag.bin's bmbt (the root in the inode points at it).
    static func firstLeaf(_ fs: XFSFilesystem, _ ino: UInt64) throws -> (fsblock: UInt64, offset: UInt64) {
        let inode = try fs.inode(ino)
        let maxRecords = (inode.dataFork.count - 4) / 16
        let b = XFSBytes(inode.dataFork, structure: "fork")
        let pointer = try b.u64(4 + maxRecords * 8)
        return (pointer, try #require(fs.geometry.byteOffset(fsblock: pointer)))
    }

    @Test func badBmbtBlockFailsThatFileOnly() throws {
        let (fs, image, _) = try Self.damaged("bmbt-crc") { fs, image, h in
            let leaf = try Self.firstLeaf(fs, #require(image.entry("frag.bin")).ino)
            var raw = try Self.read(h, at: leaf.offset + 200, count: 1)
            raw[0] ^= 0xFF
            try Self.write(h, raw, at: leaf.offset + 200)
        }
        let ino = try #require(image.entry("frag.bin")).ino
        #expect(try fs.attributes(ino).size == image.entry("frag.bin")?.size)
        let e = Self.ioError { _ = try fs.openFile(ino) }
        #expect(e?.errno == .ioError)
        #expect(e?.reason == "CRC mismatch")
        #expect(e?.structure?.hasPrefix("inode \(ino) data fork bmbt block ") == true)
        try Self.othersStillRead(fs, image, except: "frag.bin")
    }

    @Test func bmbtLoopIsDetected() throws {
        let (fs, image, _) = try Self.damaged("bmbt-loop") { fs, image, h in
            // The first node below the root names its first child twice (a tree of this size
            // has its root in the inode with one record, then a level-1 block).
            let node = try Self.firstLeaf(fs, #require(image.entry("frag.bin")).ino)
            var raw = try Self.read(h, at: node.offset, count: Int(fs.geometry.blockSize))
            let b = XFSBytes(raw, structure: "node")
            #expect(try b.u16(4) >= 1 && b.u16(6) >= 2)
            let pointers = XFSBmapBtree.headerV5 + (raw.count - XFSBmapBtree.headerV5) / 16 * 8
            raw.replaceSubrange(pointers + 8 ..< pointers + 16, with: Array(raw[pointers ..< pointers + 8]))
            Self.stamp(&raw, crcOffset: XFSBmapBtree.crcOffsetV5)
            try Self.write(h, raw, at: node.offset)
        }
        let ino = try #require(image.entry("frag.bin")).ino
        let e = Self.ioError { _ = try fs.openFile(ino) }
        #expect(e?.reason == "is met twice (a loop in the B+tree)")
        try Self.othersStillRead(fs, image, except: "frag.bin")
    }

    @Test func extentPastItsAGFailsThatFile() throws {
        let (fs, image, _) = try Self.damaged("extent-past-ag") { fs, image, h in
            try Self.editInode(fs, h, #require(image.entry("dir/random.bin")).ino) { raw in
                // Record 0: offset 0, start block agBlocks-2 of AG 0, 30 blocks.
                let start = UInt64(fs.geometry.agBlocks - 2)
                Self.put(&raw, XFSInode.v3CoreSize, 8, start >> 43)
                Self.put(&raw, XFSInode.v3CoreSize + 8, 8, (start & ((1 << 43) - 1)) << 21 | 30)
            }
        }
        let ino = try #require(image.entry("dir/random.bin")).ino
        let e = Self.ioError { _ = try fs.openFile(ino) }
        #expect(e?.errno == .ioError)
        #expect(e?.reason.hasSuffix("lies outside its AG") == true)
        try Self.othersStillRead(fs, image, except: "dir/random.bin")
    }

    @Test func extentAtAFileOffsetPastByteRangeIsRefused() throws {
        let (fs, image, _) = try Self.damaged("extent-far-offset") { fs, image, h in
            try Self.editInode(fs, h, #require(image.entry("hello.txt")).ino) { raw in
                // Keep the start block (bits 8..0 of l0 and 63..21 of l1), move the file offset near 2^54.
                let l0 = raw[XFSInode.v3CoreSize ..< XFSInode.v3CoreSize + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                Self.put(&raw, XFSInode.v3CoreSize, 8, ((1 << 54) - 2) << 9 | (l0 & 0x1FF))
            }
        }
        let e = Self.ioError { _ = try fs.openFile(#require(image.entry("hello.txt")).ino) }
        #expect(e?.reason == "extent 0 (file block \((UInt64(1) << 54) - 2), 1 blocks) is invalid")
    }

    @Test func hugeAndNegativeSizes() throws {
        let (fs, image, _) = try Self.damaged("sizes") { fs, image, h in
            try Self.editInode(fs, h, #require(image.entry("big.bin")).ino) { Self.put(&$0, 56, 8, 1 << 62) }
            try Self.editInode(fs, h, #require(image.entry("hello.txt")).ino) { Self.put(&$0, 56, 8, 1 << 63) }
            try Self.editInode(fs, h, #require(image.entry("rel-link")).ino) { Self.put(&$0, 56, 8, 5000) }
        }
        let big = try fs.openFile(#require(image.entry("big.bin")).ino)
        #expect(big.size == 1 << 62)
        var buffer = [UInt8](repeating: 0xAA, count: 4096)
        // Past the extents it is a hole: zeros, at once, without allocating the size.
        #expect(try buffer.withUnsafeMutableBytes { try big.read(into: $0, at: 1 << 61) } == 4096)
        #expect(buffer.allSatisfy { $0 == 0 })
        // The written blocks, the last one now whole.
        #expect(try big.dataRanges().reduce(0) { $0 + $1.length } == (9_000_000 + 4095) / 4096 * 4096)
        let e = Self.ioError { _ = try fs.attributes(#require(image.entry("hello.txt")).ino) }
        #expect(e?.reason == "size \(UInt64(1) << 63) is negative as the kernel reads it")
        let link = Self.ioError { _ = try fs.readlink(#require(image.entry("rel-link")).ino) }
        #expect(link?.errno == .ioError)
    }

    @Test func bogusInodeNumbersAreErrors() throws {
        let image = try XFSFixtures.image("v5-default")
        let fs = try XFSFixtures.open(image)
        for ino: UInt64 in [0, 1, UInt64.max, 1 << 40, UInt64(fs.geometry.agCount) << (UInt64(fs.geometry.agBlockLog) + UInt64(fs.geometry.inodesPerBlockLog))] {
            let e = Self.ioError { _ = try fs.attributes(ino) }
            #expect(e?.errno == .ioError, "inode \(ino)")
        }
        // A free inode in the root's chunk: mode 0.
        let root = fs.rootNode
        let used = Set(image.entries.map(\.ino))
        let free = try #require((root ..< root + 64).first { !used.contains($0) && $0 > root + 3 })
        #expect(Self.ioError { _ = try fs.attributes(free) }?.reason == "is free (mode 0) but named by a directory")
    }

    /// The committed fuzz seeds (fuzz/corpus/xfs) open and walk; random byte mutations of them
    /// end in errors or success, never a trap or a hang.
    @Test func fuzzSeedsOpenAndMutationsNeverTrap() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/corpus/xfs")
        let names = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
        #expect(names == ["v4-ftype0", "v5-1k"])
        var generator = SystemRandomNumberGenerator()
        for name in names {
            let seed = [UInt8](try Data(contentsOf: corpus.appendingPathComponent(name)))
            let fs = try XFSFilesystem(device: FuzzDevice(input: seed), damageLog: { _ in })
            #expect(try fs.entries(fs.rootNode).count >= 3, "\(name)")
            for _ in 0 ..< 200 {
                var input = seed
                for _ in 0 ..< 8 {
                    // Past the sparse header (16 bytes), anywhere in the records.
                    let at = Int.random(in: 16 ..< input.count, using: &generator)
                    input[at] = UInt8.random(in: 0 ... 255, using: &generator)
                }
                FuzzHarness.xfs(input)
            }
        }
    }
}
