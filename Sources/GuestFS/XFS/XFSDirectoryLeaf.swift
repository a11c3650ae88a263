import GuestFSBlock
import GuestFSFilesystem

/// A directory's hash index block ("XFS Algorithms & Data Structures" §19.3 "Leaf
/// Directories", §19.4 "Node Directories"; xfs_da_format.h `xfs_dir2_leaf_hdr` /
/// `xfs_dir3_leaf_hdr`, `xfs_dir2_leaf_entry`, `xfs_dir2_leaf_tail`).
///
/// LEAF1 (leaf form: the one leaf block, ending in a tail of `bestcount` be16 best-free values
/// and the be32 bestcount) or LEAFN (node form: many leaves under dabtree nodes, linked by
/// blkinfo.forw). The entries are (hashval, address) sorted by hashval; address is the
/// entry's byte offset in the directory's data space divided by 8, 0 for a stale entry.
struct XFSDirectoryLeaf {
    let bytes: XFSBytes
    let count: Int
    let entriesStart: Int
    let isLeaf1: Bool
    let forward: UInt32

    init(_ b: XFSBytes, v5: Bool) throws {
        let F = XFSDirectoryFormat.self
        let magic = try XFSDaNode.magic(b)
        switch magic {
        case v5 ? F.v5Leaf1Magic : F.v4Leaf1Magic: isLeaf1 = true
        case v5 ? F.v5LeafNMagic : F.v4LeafNMagic: isLeaf1 = false
        default: throw b.damaged("bad magic 0x\(String(magic, radix: 16)) for a directory leaf")
        }
        entriesStart = F.leafHeaderSize(v5: v5)
        count = Int(try b.u16(v5 ? 56 : 12))
        var end = b.count
        if isLeaf1 {
            let bests = Int(try b.u32(b.count - 4))
            guard bests <= (b.count - 4 - entriesStart) / 2 else { throw b.damaged("leaf tail claims \(bests) best-free entries") }
            end = b.count - 4 - bests * 2
        }
        guard count <= (end - entriesStart) / 8 else { throw b.damaged("directory leaf claims \(count) entries") }
        forward = try XFSDaNode.forward(b)
        bytes = b
    }

    func entry(_ i: Int) throws -> (hash: UInt32, address: UInt32) {
        (try bytes.u32(entriesStart + i * 8), try bytes.u32(entriesStart + i * 8 + 4))
    }

    /// The first entry index whose hash is at least `hash`.
    func lowerBound(_ hash: UInt32) throws -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if try entry(mid).hash < hash { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
