@testable import GuestFS
import Testing

/// v4 attribute blocks (xfs_attr_leaf_hdr, xfs_da_node_hdr, headerless remote values), built
/// here byte by byte: this kernel mounts no v4 filesystem and xfs_db's attr_set crashes on v4
/// (xfsprogs 6.1), so no tool can put attributes on one for us.
@Suite struct XFSAttributeV4Tests {
    static let geometry = XFSGeometry(
        blockSize: 4096, blockLog: 12, sectorSize: 512, inodeSize: 256, inodesPerBlockLog: 4,
        agBlocks: 1 << 16, agBlockLog: 16, agCount: 4, dirBlockLog: 0, isV5: false, hasFtype: false,
        asciiCI: false, metaUUID: [UInt8](repeating: 0, count: 16), hasNrext64: false, hasBigtime: false)

    struct Entry { var flags: UInt8; var name: String; var value: [UInt8]; var remoteBlock: UInt32? }

    static func be(_ v: UInt64, _ width: Int) -> [UInt8] { (0 ..< width).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(width - 1 - $0))) } }

    /// An xfs_attr_leafblock: blkinfo (forw, back, magic 0xFBEE), count, usedbytes, firstused,
    /// holes, pad, freemap; entries sorted by hash; name records packed at the block's end.
    static func leaf(_ entries: [Entry], forward: UInt32 = 0) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 4096)
        func put(_ at: Int, _ bytes: [UInt8]) { block.replaceSubrange(at ..< at + bytes.count, with: bytes) }
        put(0, be(UInt64(forward), 4))
        put(8, be(0xFBEE, 2))
        put(12, be(UInt64(entries.count), 2))
        var end = 4096
        let sorted = entries.sorted { XFSNameHash.hash(Array($0.name.utf8)) < XFSNameHash.hash(Array($1.name.utf8)) }
        for (i, e) in sorted.enumerated() {
            let name = Array(e.name.utf8)
            let record: [UInt8] = e.remoteBlock.map { be(UInt64($0), 4) + be(UInt64(e.value.count), 4) + [UInt8(name.count)] + name }
                ?? be(UInt64(e.value.count), 2) + [UInt8(name.count)] + name + e.value
            end -= (record.count + 3) & ~3
            put(end, record)
            put(32 + i * 8, be(UInt64(XFSNameHash.hash(name)), 4) + be(UInt64(end), 2) + [e.flags | (e.remoteBlock == nil ? 1 : 0), 0])
        }
        put(16, be(UInt64(end), 2))
        return block
    }

    /// An xfs_da_intnode: blkinfo (magic 0xFEBE), count, level, then (hashval, before).
    static func node(_ children: [(hash: UInt32, block: UInt32)]) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 4096)
        func put(_ at: Int, _ bytes: [UInt8]) { block.replaceSubrange(at ..< at + bytes.count, with: bytes) }
        put(8, be(0xFEBE, 2))
        put(12, be(UInt64(children.count), 2))
        put(14, be(1, 2))
        for (i, c) in children.enumerated() { put(16 + i * 8, be(UInt64(c.hash), 4) + be(UInt64(c.block), 4)) }
        return block
    }

    /// Logical attribute block i lives at filesystem block 1000 + i.
    static func reader(_ blocks: [[UInt8]]) -> (XFSForkContents, XFSBlockReader) {
        let fork = XFSForkContents.extents([XFSExtent(fileOffset: 0, startBlock: 1000, blockCount: UInt64(blocks.count), unwritten: false)])
        return (fork, { fsblock, count in
            let first = Int(fsblock) - 1000
            guard first >= 0, first + Int(count) <= blocks.count else { throw ImageError(reason: "outside", errno: .ioError) }
            return Array(blocks[first ..< first + Int(count)].joined())
        })
    }

    @Test func nodeOverTwoLeavesWithARemoteValue() throws {
        let big = (0 ..< 6_000).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }
        // xfs_acl: 4 entries, USER_OBJ rw, USER 1000 r, GROUP_OBJ r, OTHER none.
        let acl = Self.be(4, 4) + [(1, 0xFFFF_FFFF, 6), (2, 1000, 4), (4, 0xFFFF_FFFF, 4), (0x20, 0xFFFF_FFFF, 0)]
            .flatMap { Self.be($0.0, 4) + Self.be($0.1, 4) + Self.be($0.2, 2) + [0, 0] }
        let first: [Entry] = [Entry(flags: 0, name: "comment", value: Array("hello".utf8)),
                              Entry(flags: 4, name: "selinux", value: Array("system_u:object_r:etc_t:s0\0".utf8)),
                              Entry(flags: 0x80, name: "half-set", value: [1])]
        let second: [Entry] = [Entry(flags: 2, name: "SGI_ACL_FILE", value: acl),
                               Entry(flags: 0, name: "big", value: big, remoteBlock: 3)]
        // The node splits by hash: the three lowest hashes in leaf 1, the other two in leaf 2.
        let all = (first + second).sorted { XFSNameHash.hash(Array($0.name.utf8)) < XFSNameHash.hash(Array($1.name.utf8)) }
        let lowLeaf = Array(all.prefix(3)), highLeaf = Array(all.suffix(2))
        let maxLow = XFSNameHash.hash(Array(lowLeaf[2].name.utf8)), maxHigh = XFSNameHash.hash(Array(highLeaf[1].name.utf8))
        #expect(maxLow < XFSNameHash.hash(Array(highLeaf[0].name.utf8)))
        let remote1 = Array(big[0 ..< 4096]), remote2 = Array(big[4096...]) + [UInt8](repeating: 0, count: 8192 - big.count)
        let blocks = [Self.node([(maxLow, 1), (maxHigh, 2)]), Self.leaf(lowLeaf, forward: 2), Self.leaf(highLeaf), remote1, remote2]
        let (fork, read) = Self.reader(blocks)
        let reader = XFSAttributeReader(geometry: Self.geometry, inode: 99, fork: fork, read: read)
        let got = Dictionary(uniqueKeysWithValues: try reader.all().map { ($0.name, $0.value) })
        let linuxACL: [UInt8] = [2, 0, 0, 0, 1, 0, 6, 0, 0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 4, 0, 0xE8, 3, 0, 0,
                                 4, 0, 4, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x20, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(got == ["user.comment": Array("hello".utf8), "security.selinux": Array("system_u:object_r:etc_t:s0\0".utf8),
                        "trusted.SGI_ACL_FILE": acl, "system.posix_acl_access": linuxACL, "user.big": big])
        for (name, value) in got { #expect(try reader.value(name: name) == value, "\(name)") }
        #expect(try reader.value(name: "user.half-set") == nil, "incomplete entries are not shown")
        #expect(try reader.value(name: "system.posix_acl_default") == nil)
        // The same blocks as a v5 filesystem would read them: not v5 blocks.
        var v5 = Self.geometry
        v5.isV5 = true
        #expect(throws: ImageError.self) { try XFSAttributeReader(geometry: v5, inode: 99, fork: fork, read: read).all() }
    }
}
