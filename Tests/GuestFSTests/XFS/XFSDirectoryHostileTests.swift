import Foundation
@testable import GuestFS
import Testing
import TestSupport

/// Damaged directory and attribute blocks, made in the test from a real image's blocks: each
/// must fail that directory's (or inode's) call with an EIO ImageError naming the structure —
/// never a crash, a hang or a huge allocation — while the other directories still read.
@Suite(.serialized) struct XFSDirectoryHostileTests {
    /// One image shared by the cases: a block, a leaf and a node directory, and files with leaf,
    /// node and remote attributes.
    final class Fixture: @unchecked Sendable {
        let image: XFSDbImage
        let dirs: [String: UInt64]
        let files: [String: UInt64]
        init() throws {
            let image = try XFSDbImage()
            self.image = image
            (dirs, files) = try image.withMount { mnt in
                try image.sh("mkdir block leaf node && touch attrs-leaf attrs-node attrs-remote")
                try XFSDirectoryReaderTests.fill(mnt + "/block", count: 40)
                try XFSDirectoryReaderTests.fill(mnt + "/leaf", count: 500)
                try XFSDirectoryReaderTests.fill(mnt + "/node", count: 20_000)
                try XFSAttributeReaderTests.setMany(mnt + "/attrs-leaf", count: 20, prefix: "user.a", valueLength: 40)
                try XFSAttributeReaderTests.setMany(mnt + "/attrs-node", count: 2_000, prefix: "user.a", valueLength: 30)
                try XFSAttributeReaderTests.setMany(mnt + "/attrs-remote", count: 3, prefix: "user.r", valueLength: 20_000)
                let d = try ["block", "leaf", "node"].map { ($0, try KernelView.inode(mnt + "/" + $0)) }
                let f = try ["attrs-leaf", "attrs-node", "attrs-remote"].map { ($0, try KernelView.inode(mnt + "/" + $0)) }
                return (Dictionary(uniqueKeysWithValues: d), Dictionary(uniqueKeysWithValues: f))
            }
        }
    }
    static let shared = Result { try Fixture() }

    /// A block reader that passes `damage` every block it reads (by filesystem block number).
    static func damaged(_ image: XFSDbImage, _ damage: @escaping (UInt64, inout [UInt8]) -> Void) -> XFSBlockReader {
        let inner = image.reader
        let blockSize = Int(image.geometry.blockSize)
        return { fsblock, count in
            var bytes = try inner(fsblock, count)
            for i in 0 ..< Int(count) {
                var one = Array(bytes[i * blockSize ..< (i + 1) * blockSize])
                damage(fsblock + UInt64(i), &one)
                bytes.replaceSubrange(i * blockSize ..< (i + 1) * blockSize, with: one)
            }
            return bytes
        }
    }

    /// Restamps a v5 CRC after a structural change, so the check after the CRC is reached.
    static func restamp(_ block: inout [UInt8], crcOffset: Int) {
        let crc = XFSChecksum.compute(block, crcOffset: crcOffset)
        for i in 0 ..< 4 { block[crcOffset + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }

    static func put32(_ block: inout [UInt8], _ at: Int, _ v: UInt32) {
        for i in 0 ..< 4 { block[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(3 - i))) }
    }
    static func put16(_ block: inout [UInt8], _ at: Int, _ v: UInt16) {
        block[at] = UInt8(v >> 8); block[at + 1] = UInt8(v & 0xFF)
    }

    func expectEIO(_ label: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("\(label): no error")
        } catch let e as ImageError {
            print("XFS damage \(label): \(e)"); #expect(e.errno == .ioError, "\(label): \(e)")
            #expect(e.structure != nil, "\(label): \(e)")
        } catch {
            Issue.record("\(label): not an ImageError: \(error)")
        }
    }

    func extents(_ image: XFSDbImage, _ ino: UInt64, attr: Bool = false) throws -> [XFSExtent] {
        let forks = try image.forks(ino)
        guard case .extents(let e)? = attr ? forks.attr : forks.data else { throw Shell.Failure(command: "extents", status: 1, stderr: "") }
        return e
    }

    @Test func badCRCFailsThatDirectoryOnly() throws {
        let fx = try Self.shared.get()
        let image = fx.image
        for name in ["block", "leaf", "node"] {
            let ino = fx.dirs[name]!
            let first = try extents(image, ino).first { $0.fileOffset == 0 }!.startBlock
            let read = Self.damaged(image) { fsb, b in if fsb == first { b[100] ^= 0x01 } }
            let reader = XFSDirectoryReader(geometry: image.geometry, inode: ino, fork: try image.forks(ino).data, size: 0, read: read)
            expectEIO("\(name) entries") { _ = try reader.entries() }
            expectEIO("\(name) parent") { _ = try reader.parent() }
            // The other directories read through the same damaged reader.
            for other in ["block", "leaf", "node"] where other != name {
                let o = fx.dirs[other]!
                let r = XFSDirectoryReader(geometry: image.geometry, inode: o, fork: try image.forks(o).data, size: 0, read: read)
                #expect(try r.entries().count > 0)
            }
        }
        // The block is wrong for another owner: the v5 header names the directory.
        let leafIno = fx.dirs["leaf"]!, nodeIno = fx.dirs["node"]!
        let stranger = XFSDirectoryReader(geometry: image.geometry, inode: nodeIno, fork: try image.forks(leafIno).data, size: 0, read: image.reader)
        expectEIO("owner") { _ = try stranger.entries() }
    }

    @Test func structuralDamageBehindAGoodCRC() throws {
        let fx = try Self.shared.get()
        let image = fx.image
        let g = image.geometry!
        let leafSpace = XFSDirectoryFormat.leafSpaceByte >> UInt64(g.blockLog)
        let name = Array("file-000123".utf8)
        // (label, directory, which logical block, damage)
        let cases: [(String, String, UInt64, (inout [UInt8]) -> Void)] = [
            ("entry name length past the block", "leaf", 0, { b in b[64 + 8] = 0xFF; b[64 + 9] = 0x41 }),
            ("unused region of length 0", "leaf", 0, { b in Self.put16(&b, 64, 0xFFFF); Self.put16(&b, 66, 0) }),
            ("block tail claims 2^31 leaf entries", "block", 0, { b in Self.put32(&b, b.count - 8, 0x8000_0000) }),
            ("leaf count past the block", "leaf", leafSpace, { b in Self.put16(&b, 56, 0xFFFF) }),
            ("leaf best count past the block", "leaf", leafSpace, { b in Self.put32(&b, b.count - 4, 0xFFFF_FFFF) }),
            ("dabtree node points at itself", "node", leafSpace, { b in
                for i in 0 ..< Int(UInt16(b[56]) << 8 | UInt16(b[57])) { Self.put32(&b, 64 + i * 8 + 4, UInt32(leafSpace)) } }),
            ("dabtree node level 9", "node", leafSpace, { b in Self.put16(&b, 58, 9) }),
            ("dabtree node points into the data space", "node", leafSpace, { b in
                for i in 0 ..< Int(UInt16(b[56]) << 8 | UInt16(b[57])) { Self.put32(&b, 64 + i * 8 + 4, 0) } }),
        ]
        for (label, dir, logical, damage) in cases {
            let ino = fx.dirs[dir]!
            let map = try XFSForkMap(extents: try extents(image, ino), geometry: g, read: image.reader, owner: "test")
            let target = try map.physical(logical, structure: "test")
            let isIndex = logical >= leafSpace
            let read = Self.damaged(image) { fsb, b in
                guard fsb == target else { return }
                damage(&b)
                Self.restamp(&b, crcOffset: isIndex ? 12 : 4)
            }
            let reader = XFSDirectoryReader(geometry: g, inode: ino, fork: .extents(try extents(image, ino)), size: 0, read: read)
            if isIndex {
                expectEIO(label) { _ = try reader.lookup(name) }
                #expect(try reader.entries().count > 0, "\(label): listing needs no index")
            } else {
                expectEIO(label) { _ = try reader.entries() }
            }
        }
        // A leaf pointer to a data block the directory does not have.
        let leafIno = fx.dirs["leaf"]!
        let map = try XFSForkMap(extents: try extents(image, leafIno), geometry: g, read: image.reader, owner: "test")
        let leafBlock = try map.physical(leafSpace, structure: "test")
        let read = Self.damaged(image) { fsb, b in
            guard fsb == leafBlock else { return }
            let count = Int(UInt16(b[56]) << 8 | UInt16(b[57]))
            for i in 0 ..< count { Self.put32(&b, 64 + i * 8 + 4, 0x0FFF_FFF0) }
            Self.restamp(&b, crcOffset: 12)
        }
        let reader = XFSDirectoryReader(geometry: g, inode: leafIno, fork: .extents(try extents(image, leafIno)), size: 0, read: read)
        expectEIO("leaf address in a hole") { _ = try reader.lookup(name) }
    }

    @Test func shortformAndExtentListDamage() throws {
        let fx = try Self.shared.get()
        let g = fx.image.geometry!
        let read = fx.image.reader
        func sf(_ bytes: [UInt8]) -> XFSDirectoryReader {
            XFSDirectoryReader(geometry: g, inode: 128, fork: .local(bytes), size: UInt64(bytes.count), read: read)
        }
        // count 200 in a 6-byte fork; a name running off the end; an empty name; parent 0.
        expectEIO("count past the fork") { _ = try sf([200, 0, 0, 0, 0, 128]).entries() }
        expectEIO("name past the fork") { _ = try sf([1, 0, 0, 0, 0, 128, 50, 0, 0x60, 0x41]).entries() }
        expectEIO("empty name") { _ = try sf([1, 0, 0, 0, 0, 128, 0, 0, 0x60, 1, 0, 0, 0, 131]).entries() }
        expectEIO("parent 0") { _ = try sf([0, 0, 0, 0, 0, 0]).parent() }
        expectEIO("empty fork") { _ = try sf([]).entries() }
        #expect(try sf([0, 0, 0, 0, 0, 128]).entries().isEmpty)
        // Two entries (v5: ftype byte before the inode number); offsets must increase.
        let two: [UInt8] = [2, 0, 0, 0, 0, 128, 1, 0, 0x60, 0x61, 1, 0, 0, 0, 131, 1, 0, 0x70, 0x62, 1, 0, 0, 0, 132]
        #expect(try sf(two).entries().map(\.cookie) == [0x60 >> 3, 0x70 >> 3])
        var backwards = two
        backwards[17] = 0x50
        expectEIO("shortform offsets not increasing") { _ = try sf(backwards).entries() }
        // Hostile extents mapping two directory blocks onto one disk block.
        let blockIno = fx.dirs["block"]!
        let only = try extents(fx.image, blockIno)[0]
        let twice = [only, XFSExtent(fileOffset: 1, startBlock: only.startBlock, blockCount: 1, unwritten: false)]
        expectEIO("one disk block twice") {
            _ = try XFSDirectoryReader(geometry: g, inode: blockIno, fork: .extents(twice), size: 0, read: read).entries()
        }
        // Overlapping extents, a hole where the leaf should be, an extent claiming 2^60 blocks.
        let ino = fx.dirs["leaf"]!
        let e = try extents(fx.image, ino)
        func ext(_ list: [XFSExtent]) -> XFSDirectoryReader {
            XFSDirectoryReader(geometry: g, inode: ino, fork: .extents(list), size: 0, read: read)
        }
        expectEIO("overlap") { _ = try ext(e + [XFSExtent(fileOffset: 0, startBlock: 5, blockCount: 2, unwritten: false)]).entries() }
        expectEIO("no leaf") { _ = try ext(e.filter { $0.fileOffset < 1000 } + [XFSExtent(fileOffset: 1 << 23 + 1, startBlock: 9, blockCount: 1, unwritten: false)]).lookup(Array("x".utf8)) }
        expectEIO("huge extent") { _ = try ext([XFSExtent(fileOffset: 0, startBlock: 1 << 40, blockCount: 1 << 60, unwritten: false)]).entries() }
        expectEIO("unwritten") { _ = try ext(e.map { var x = $0; x.unwritten = true; return x }).entries() }
    }

    @Test func attributeDamage() throws {
        let fx = try Self.shared.get()
        let image = fx.image
        let g = image.geometry!
        func reader(_ name: String, _ read: XFSBlockReader? = nil) throws -> XFSAttributeReader {
            let ino = fx.files[name]!
            return XFSAttributeReader(geometry: g, inode: ino, fork: try image.forks(ino).attr!, read: read ?? image.reader)
        }
        #expect(try reader("attrs-node").all().count == 2_000)
        #expect(try reader("attrs-remote").all().map(\.value.count) == [20_000, 20_000, 20_000])
        func block0(_ name: String) throws -> UInt64 {
            try XFSForkMap(extents: try extents(image, fx.files[name]!, attr: true), geometry: g, read: image.reader, owner: "t").physical(0, structure: "t")
        }
        // A bad CRC on the root, a node whose children are itself, a leaf count past the block.
        let nodeRoot = try block0("attrs-node"), leafRoot = try block0("attrs-leaf")
        let crc = Self.damaged(image) { fsb, b in if fsb == nodeRoot { b[200] ^= 0x80 } }
        expectEIO("attr CRC") { _ = try reader("attrs-node", crc).all() }
        expectEIO("attr CRC lookup") { _ = try reader("attrs-node", crc).value(name: "user.a00001") }
        #expect(try reader("attrs-leaf", crc).all().count == 20, "another inode's attributes still read")
        let loop = Self.damaged(image) { fsb, b in
            guard fsb == nodeRoot else { return }
            for i in 0 ..< Int(UInt16(b[56]) << 8 | UInt16(b[57])) { Self.put32(&b, 64 + i * 8 + 4, 0) }
            Self.restamp(&b, crcOffset: 12)
        }
        expectEIO("attr node loop") { _ = try reader("attrs-node", loop).all() }
        expectEIO("attr node loop lookup") { _ = try reader("attrs-node", loop).value(name: "user.a00001") }
        let count = Self.damaged(image) { fsb, b in
            guard fsb == leafRoot else { return }
            Self.put16(&b, 56, 0xFFFF)
            Self.restamp(&b, crcOffset: 12)
        }
        expectEIO("attr leaf count") { _ = try reader("attrs-leaf", count).all() }
        let nameIndex = Self.damaged(image) { fsb, b in
            guard fsb == leafRoot else { return }
            Self.put16(&b, 80 + 4, UInt16(b.count - 2))
            Self.restamp(&b, crcOffset: 12)
        }
        expectEIO("attr name index at the block's end") { _ = try reader("attrs-leaf", nameIndex).all() }
        // Remote: a value length over 64 KiB, and a remote block from another offset.
        let remoteRoot = try block0("attrs-remote")
        let huge = Self.damaged(image) { fsb, b in
            guard fsb == remoteRoot else { return }
            let count = Int(UInt16(b[56]) << 8 | UInt16(b[57]))
            for i in 0 ..< count {
                let nameIndex = Int(UInt16(b[80 + i * 8 + 4]) << 8 | UInt16(b[80 + i * 8 + 5]))
                Self.put32(&b, nameIndex + 4, 0x7FFF_FFFF)
            }
            Self.restamp(&b, crcOffset: 12)
        }
        expectEIO("remote length") { _ = try reader("attrs-remote", huge).all() }
        // The first remote value starts at attribute block 1, right after the leaf.
        let firstRemote = try XFSForkMap(extents: try extents(image, fx.files["attrs-remote"]!, attr: true), geometry: g,
                                         read: image.reader, owner: "t").physical(1, structure: "t")
        #expect(try image.reader(firstRemote, 1).prefix(4) == [0x58, 0x41, 0x52, 0x4D], "XARM")
        let shifted = Self.damaged(image) { fsb, b in
            guard fsb == firstRemote else { return }
            Self.put32(&b, 4, 56)
            Self.restamp(&b, crcOffset: 12)
        }
        expectEIO("remote offset") { _ = try reader("attrs-remote", shifted).all() }
        let stale = Self.damaged(image) { fsb, b in if fsb == firstRemote { b[300] ^= 1 } }
        expectEIO("remote CRC") { _ = try reader("attrs-remote", stale).all() }
        // Shortform: totsize past the fork, a value past totsize.
        func sf(_ bytes: [UInt8]) -> XFSAttributeReader { XFSAttributeReader(geometry: g, inode: 131, fork: .local(bytes), read: image.reader) }
        expectEIO("totsize") { _ = try sf([0, 200, 1, 0, 1, 1, 0, 0x61, 0x62]).all() }
        expectEIO("value past totsize") { _ = try sf([0, 9, 1, 0, 1, 9, 0, 0x61, 0x62]).all() }
        #expect(try sf([0, 9, 1, 0, 1, 1, 0, 0x61, 0x62]).all() == [Xattr(name: "user.a", value: [0x62])])
        // An ACL whose count does not match its length.
        expectEIO("ACL") { _ = try sf([0, 23, 1, 0, 12, 4, 2] + Array("SGI_ACL_FILE".utf8) + [0, 0, 0, 9]).all() }
    }

    /// Random byte damage on every block a node directory and a node attribute fork read, CRCs
    /// restamped so the structural checks are what stands: every call returns or throws.
    @Test func randomDamageNeverCrashes() throws {
        let fx = try Self.shared.get()
        let image = fx.image
        var rng = SystemRandomNumberGenerator()
        var thrown = 0, rounds = 0
        let dirIno = fx.dirs["node"]!, attrIno = fx.files["attrs-node"]!
        let dirFork = try image.forks(dirIno).data, attrFork = try image.forks(attrIno).attr!
        let names = (0 ..< 20).map { Array(String(format: "file-%06d", $0 * 997).utf8) }
        for round in 0 ..< 300 {
            let seed = UInt64.random(in: 0 ..< UInt64.max, using: &rng)
            let read = Self.damaged(image) { fsb, b in
                var s = seed ^ fsb &* 0x9E37_79B9_7F4A_7C15
                func next() -> Int { s = s &* 6364136223846793005 &+ 1442695040888963407; return Int(s >> 33) }
                guard next() % 3 == 0 else { return }
                for _ in 0 ..< 1 + next() % 4 { b[next() % b.count] = UInt8(truncatingIfNeeded: next()) }
                let magic16 = UInt16(b[8]) << 8 | UInt16(b[9])
                Self.restamp(&b, crcOffset: [0x3EBE, 0x3DFF, 0x3DF1, 0x3BEE].contains(magic16) ? 12 : 4)
            }
            let dir = XFSDirectoryReader(geometry: image.geometry, inode: dirIno, fork: dirFork, size: 0, read: read)
            let attrs = XFSAttributeReader(geometry: image.geometry, inode: attrIno, fork: attrFork, read: read)
            for call in 0 ..< 3 {
                rounds += 1
                do {
                    switch (round + call) % 3 {
                    case 0: _ = try dir.entries()
                    case 1: for n in names { _ = try dir.lookup(n) }
                    default: _ = try attrs.all(); _ = try attrs.value(name: "user.a00042")
                    }
                } catch is ImageError { thrown += 1 }
            }
        }
        print("XFS random damage: \(thrown) of \(rounds) calls failed with an ImageError, none crashed")
        #expect(thrown > 0)
    }
}
