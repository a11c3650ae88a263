/// One directory data block: the single block of a block-form directory, or one of the data
/// blocks of a leaf- or node-form directory ("XFS Algorithms & Data Structures" §19.2 "Block
/// Directories", §19.3 "Leaf Directories"; xfs_da_format.h `xfs_dir2_data_hdr` /
/// `xfs_dir3_data_hdr`, `xfs_dir2_data_entry`, `xfs_dir2_data_unused`, `xfs_dir2_block_tail`,
/// `xfs_dir2_leaf_entry`).
///
/// After the header come 8-byte-aligned records up to the end of the block (or, in a block
/// directory, up to the leaf array that ends in the block tail): an entry is inumber (be64),
/// namelen, name, ftype?, padding and a be16 tag holding the entry's own offset; an unused
/// region is 0xFFFF, its be16 length, and the same tag at its end.
struct XFSDirectoryDataBlock {
    let bytes: XFSBytes
    /// Logical directory block index (the `db` of xfs_dir2_db_t).
    let index: UInt64
    let isBlockForm: Bool
    /// Where records end: the block size, or the start of a block directory's leaf array.
    let recordsEnd: Int
    /// A block directory's hash index: `leafCount` (hashval, address) pairs from `leafStart`.
    let leafStart: Int
    let leafCount: Int
    let geometry: XFSGeometry

    /// Reads and checks directory block `index` of `map`.
    init(map: XFSForkMap, index: UInt64, inode: UInt64, geometry: XFSGeometry) throws {
        let fsbPerBlock = UInt32(1) << UInt32(geometry.dirBlockLog)
        let (logical, overflow) = index.multipliedReportingOverflow(by: UInt64(fsbPerBlock))
        let structure = "directory block \(index) of inode \(inode)"
        guard !overflow else { throw ImageError(structure: structure, reason: "block index overflows", errno: .ioError) }
        let (raw, fsb) = try map.readBlocks(logical, count: fsbPerBlock, structure: structure)
        let b = XFSBytes(raw, structure: structure, deviceOffset: geometry.byteOffset(fsblock: fsb))
        let v5 = geometry.isV5
        let magic = try b.u32(0)
        let F = XFSDirectoryFormat.self
        switch magic {
        case v5 ? F.v5BlockMagic : F.v4BlockMagic: isBlockForm = true
        case v5 ? F.v5DataMagic : F.v4DataMagic: isBlockForm = false
        default: throw b.damaged("bad magic 0x\(String(magic, radix: 16)) for a directory data block")
        }
        if v5 { try XFSMetadataHeader.dir3Block.verify(b, fsblock: fsb, inode: inode, geometry: geometry) }
        let header = F.dataHeaderSize(v5: v5)
        if isBlockForm {
            // xfs_dir2_block_tail: count, stale (be32 each) in the last 8 bytes; the leaf
            // entries sit right before it.
            let tail = b.count - 8
            let count = Int(try b.u32(tail))
            guard count <= (tail - header) / 8 else { throw b.damaged("block tail claims \(count) leaf entries") }
            leafCount = count
            leafStart = tail - count * 8
            recordsEnd = leafStart
        } else {
            leafCount = 0
            leafStart = b.count
            recordsEnd = b.count
        }
        bytes = b
        self.index = index
        self.geometry = geometry
    }

    /// Every live entry of the block, "." and ".." included, with the offset each starts at.
    func records() throws -> [(offset: Int, entry: XFSDirectoryEntry)] {
        var out: [(Int, XFSDirectoryEntry)] = []
        var at = XFSDirectoryFormat.dataHeaderSize(v5: geometry.isV5)
        // Each pass moves at least 8 bytes forward, so the loop ends within the block.
        while at < recordsEnd {
            if try bytes.u16(at) == XFSDirectoryFormat.freeTag {
                let length = Int(try bytes.u16(at + 2))
                guard length >= 8, length % 8 == 0, length <= recordsEnd - at else {
                    throw bytes.damaged("unused region at byte \(at) has length \(length)")
                }
                guard try bytes.u16(at + length - 2) == UInt16(truncatingIfNeeded: at) else { throw bytes.damaged("unused region at byte \(at) has a bad tag") }
                at += length
                continue
            }
            let (entry, size) = try self.entry(at: at)
            out.append((at, entry))
            at += size
        }
        return out
    }

    /// The readdir cookie of byte `at` of this block (xfs_dir2_db_off_to_dataptr).
    func cookie(_ at: Int) -> UInt64 {
        (index << (UInt64(geometry.blockLog) + UInt64(geometry.dirBlockLog)) + UInt64(at)) >> UInt64(XFSDirectoryFormat.alignLog)
    }

    /// The entry starting at byte `at` and its size; checks it fits the records area and
    /// that its tag names `at`.
    func entry(at: Int) throws -> (XFSDirectoryEntry, Int) {
        let header = XFSDirectoryFormat.dataHeaderSize(v5: geometry.isV5)
        guard at >= header, at % 8 == 0, at < recordsEnd else { throw bytes.damaged("no directory entry can start at byte \(at)") }
        let ino = try bytes.u64(at)
        let nameLength = Int(try bytes.u8(at + 8))
        let size = XFSDirectoryFormat.entrySize(nameLength: nameLength, ftype: geometry.hasFtype)
        guard nameLength > 0, size <= recordsEnd - at else { throw bytes.damaged("entry at byte \(at) has name length \(nameLength)") }
        guard try bytes.u16(at + size - 2) == UInt16(truncatingIfNeeded: at) else { throw bytes.damaged("entry at byte \(at) has a bad tag") }
        guard geometry.plausibleInode(ino) else { throw bytes.damaged("entry at byte \(at) names inode \(ino), not in the filesystem") }
        let name = try bytes.slice(at + 9, nameLength)
        let ftype = geometry.hasFtype ? try bytes.u8(at + 9 + nameLength) : nil
        return (XFSDirectoryEntry(name: name, inode: ino, fileType: ftype, cookie: cookie(at)), size)
    }

    /// Leaf entry `i` of a block directory: (hashval, address in 8-byte units).
    func leafEntry(_ i: Int) throws -> (hash: UInt32, address: UInt32) {
        (try bytes.u32(leafStart + i * 8), try bytes.u32(leafStart + i * 8 + 4))
    }
}
