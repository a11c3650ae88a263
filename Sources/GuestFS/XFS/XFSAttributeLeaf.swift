import GuestFSBlock
import GuestFSFilesystem

/// One attribute leaf block ("XFS Algorithms & Data Structures" §20.2 "Leaf Attributes";
/// xfs_da_format.h `xfs_attr_leaf_hdr` / `xfs_attr3_leaf_hdr`, `xfs_attr_leaf_entry`,
/// `xfs_attr_leaf_name_local`, `xfs_attr_leaf_name_remote`).
///
/// After the header, `count` entries of (hashval be32, nameidx be16, flags, pad) sorted by
/// hashval; nameidx is the byte offset of the name record in this block: local records are
/// valuelen (be16), namelen, name, value; remote ones valueblk (be32), valuelen (be32),
/// namelen, name.
struct XFSAttributeLeaf {
    let bytes: XFSBytes
    let count: Int
    let entriesStart: Int
    let forward: UInt32

    init(_ b: XFSBytes, v5: Bool) throws {
        let magic = try XFSDaNode.magic(b)
        guard magic == (v5 ? XFSAttributeFormat.v5LeafMagic : XFSAttributeFormat.v4LeafMagic) else {
            throw b.damaged("bad magic 0x\(String(magic, radix: 16)) for an attribute leaf")
        }
        entriesStart = XFSAttributeFormat.leafHeaderSize(v5: v5)
        count = Int(try b.u16(v5 ? 56 : 12))
        guard count <= (b.count - entriesStart) / 8 else { throw b.damaged("attribute leaf claims \(count) entries") }
        forward = try XFSDaNode.forward(b)
        bytes = b
    }

    func hash(_ i: Int) throws -> UInt32 { try bytes.u32(entriesStart + i * 8) }

    /// Entry `i`'s attribute; its name record must lie past the entry table, inside the block.
    func attribute(_ i: Int) throws -> XFSRawAttribute {
        let e = entriesStart + i * 8
        let nameIndex = Int(try bytes.u16(e + 4))
        let flags = try bytes.u8(e + 6)
        guard nameIndex >= entriesStart + count * 8 else {
            throw bytes.damaged("entry \(i)'s name at byte \(nameIndex) overlaps the entry table")
        }
        if flags & XFSAttributeFormat.local != 0 {
            let valueLength = Int(try bytes.u16(nameIndex))
            let nameLength = Int(try bytes.u8(nameIndex + 2))
            guard nameLength > 0 else { throw bytes.damaged("entry \(i) has an empty name") }
            let name = try bytes.slice(nameIndex + 3, nameLength)
            let value = try bytes.slice(nameIndex + 3 + nameLength, valueLength)
            return XFSRawAttribute(flags: flags, name: name, value: .local(value))
        }
        let block = try bytes.u32(nameIndex)
        let valueLength = try bytes.u32(nameIndex + 4)
        let nameLength = Int(try bytes.u8(nameIndex + 8))
        guard nameLength > 0 else { throw bytes.damaged("entry \(i) has an empty name") }
        let name = try bytes.slice(nameIndex + 9, nameLength)
        return XFSRawAttribute(flags: flags, name: name, value: .remote(block: block, length: valueLength))
    }

    /// The first entry index whose hash is at least `hash`.
    func lowerBound(_ hash: UInt32) throws -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if try self.hash(mid) < hash { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
