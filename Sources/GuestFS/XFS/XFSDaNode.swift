import GuestFSBlock
import GuestFSFilesystem

/// An interior node of a directory's or attribute fork's dabtree ("XFS Algorithms & Data
/// Structures" §18 "Directory/Attribute Internal Nodes"; xfs_da_format.h `xfs_da_intnode`,
/// `xfs_da_node_hdr` / `xfs_da3_node_hdr`, `xfs_da_node_entry`).
///
/// Header: xfs_da_blkinfo (forw, back, magic be16, pad: 12 bytes) then count, level (be16);
/// v5: xfs_da3_blkinfo (56 bytes, self-describing) then count, level, pad (64 bytes). Entries
/// are (hashval, before): `before` is the logical block of the child whose largest hash is
/// `hashval`, entries sorted by hashval.
struct XFSDaNode {
    /// XFS_DA_NODE_MAGIC, XFS_DA3_NODE_MAGIC.
    static let v4Magic: UInt16 = 0xFEBE, v5Magic: UInt16 = 0x3EBE
    /// XFS_DA_NODE_MAXDEPTH: a dabtree has at most 5 levels, leaves included.
    static let maxDepth = 5

    let bytes: XFSBytes
    let count: Int
    let level: Int
    let entriesStart: Int

    /// The magic of any dabtree block (nodes and leaves alike keep it at byte 8 of blkinfo).
    static func magic(_ b: XFSBytes) throws -> UInt16 { try b.u16(8) }
    /// blkinfo.forw: the next block at the same level, 0 for none.
    static func forward(_ b: XFSBytes) throws -> UInt32 { try b.u32(0) }

    static func isNode(_ b: XFSBytes, v5: Bool) throws -> Bool { try magic(b) == (v5 ? v5Magic : v4Magic) }

    init(_ b: XFSBytes, v5: Bool) throws {
        guard try Self.isNode(b, v5: v5) else { throw b.damaged("not a dabtree node") }
        let header = v5 ? 64 : 16
        count = Int(try b.u16(v5 ? 56 : 12))
        level = Int(try b.u16(v5 ? 58 : 14))
        guard count > 0, count <= (b.count - header) / 8 else { throw b.damaged("dabtree node claims \(count) entries") }
        guard level >= 1, level < Self.maxDepth else { throw b.damaged("dabtree node has level \(level)") }
        bytes = b
        entriesStart = header
    }

    func entry(_ i: Int) throws -> (hash: UInt32, before: UInt32) {
        (try bytes.u32(entriesStart + i * 8), try bytes.u32(entriesStart + i * 8 + 4))
    }

    /// The child to descend into for `hash` (xfs_da3_node_lookup_int): the first entry whose
    /// hashval is at least `hash`, else the last entry.
    func child(for hash: UInt32) throws -> UInt32 {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if try entry(mid).hash < hash { lo = mid + 1 } else { hi = mid }
        }
        return try entry(min(lo, count - 1)).before
    }

    /// Every child, in hash order.
    func children() throws -> [UInt32] { try (0 ..< count).map { try entry($0).before } }

    /// Descends from the block at `root` to the leaf `hash` leads to; `load` reads and checks
    /// one logical block. Levels must fall by one each step, so the walk ends within
    /// `maxDepth` reads whatever the blocks say.
    static func findLeaf(root: UInt64, hash: UInt32, v5: Bool,
                         load: (UInt64) throws -> XFSBytes) throws -> (block: UInt64, bytes: XFSBytes) {
        var blockNumber = root
        var b = try load(root)
        var expected: Int?
        for _ in 0 ..< maxDepth {
            guard try isNode(b, v5: v5) else { return (blockNumber, b) }
            let node = try XFSDaNode(b, v5: v5)
            if let expected, node.level != expected { throw b.damaged("dabtree node has level \(node.level), its parent expects \(expected)") }
            expected = node.level - 1
            blockNumber = UInt64(try node.child(for: hash))
            b = try load(blockNumber)
            if expected == 0, try isNode(b, v5: v5) { throw b.damaged("dabtree node where a leaf should be") }
        }
        throw b.damaged("dabtree deeper than \(maxDepth) levels")
    }
}
