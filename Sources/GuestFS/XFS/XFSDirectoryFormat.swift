/// Directory layout constants (xfs_da_format.h; "XFS Algorithms & Data Structures" §19
/// "Directories"). A directory's data fork is one address space split in three 32 GiB
/// segments: data blocks from 0, the leaf (hash index) blocks from XFS_DIR2_LEAF_OFFSET,
/// the free-space index from XFS_DIR2_FREE_OFFSET.
enum XFSDirectoryFormat {
    /// XFS_DIR2_BLOCK_MAGIC "XD2B", XFS_DIR2_DATA_MAGIC "XD2D" (v4 headers).
    static let v4BlockMagic: UInt32 = 0x5844_3242, v4DataMagic: UInt32 = 0x5844_3244
    /// XFS_DIR3_BLOCK_MAGIC "XDB3", XFS_DIR3_DATA_MAGIC "XDD3" (v5 headers).
    static let v5BlockMagic: UInt32 = 0x5844_4233, v5DataMagic: UInt32 = 0x5844_4433
    /// XFS_DIR2_LEAF1_MAGIC, XFS_DIR2_LEAFN_MAGIC; XFS_DIR3_LEAF1_MAGIC, XFS_DIR3_LEAFN_MAGIC.
    static let v4Leaf1Magic: UInt16 = 0xD2F1, v4LeafNMagic: UInt16 = 0xD2FF
    static let v5Leaf1Magic: UInt16 = 0x3DF1, v5LeafNMagic: UInt16 = 0x3DFF
    /// XFS_DIR2_LEAF_OFFSET: byte 32 GiB of the directory's address space (XFS_DIR2_SPACE_SIZE).
    static let leafSpaceByte: UInt64 = 1 << 35
    /// xfs_dir2_data_hdr is 16 bytes (magic + 3 bestfree pairs); xfs_dir3_data_hdr 64
    /// (xfs_dir3_blk_hdr 48 + bestfree 12 + pad 4).
    static func dataHeaderSize(v5: Bool) -> Int { v5 ? 64 : 16 }
    /// xfs_dir2_leaf_hdr is 16 bytes (xfs_da_blkinfo 12 + count + stale); xfs_dir3_leaf_hdr 64
    /// (xfs_da3_blkinfo 56 + count + stale + pad).
    static func leafHeaderSize(v5: Bool) -> Int { v5 ? 64 : 16 }
    /// XFS_DIR2_DATA_FREE_TAG: first two bytes of an unused region.
    static let freeTag: UInt16 = 0xFFFF
    /// XFS_DIR2_DATA_ALIGN: entries sit on 8-byte boundaries; data pointers count in 8 bytes.
    static let alignLog = 3
    /// XFS_MAXNAMELEN − 1: a name's length fits one byte and is never 0.
    static let maxNameLength = 255

    /// The NodeType of an XFS_DIR3_FT_* file type byte (xfs_da_format.h).
    static func nodeType(ftype: UInt8) -> NodeType {
        switch ftype {
        case 1: return .regular
        case 2: return .directory
        case 3: return .characterDevice
        case 4: return .blockDevice
        case 5: return .fifo
        case 6: return .socket
        case 7: return .symlink
        default: return .unknown
        }
    }

    /// Size of a data entry (xfs_dir2_data_entsize): inumber 8, namelen 1, name, ftype?, tag 2,
    /// rounded up to 8.
    static func entrySize(nameLength: Int, ftype: Bool) -> Int {
        (8 + 1 + nameLength + (ftype ? 1 : 0) + 2 + 7) & ~7
    }
}

/// One name in an XFS directory.
struct XFSDirectoryEntry: Sendable, Equatable {
    var name: [UInt8]
    var inode: UInt64
    /// The XFS_DIR3_FT_* byte when the filesystem records file types (ftype), else nil.
    var fileType: UInt8?
    /// Where the entry sits, as the kernel's readdir cookies count (xfs_dir2_db_off_to_dataptr):
    /// its byte offset in the directory's data space divided by 8 (shortform entries keep the
    /// offset they would have in a block directory). Entries come in increasing cookie order,
    /// and `XFSDirectoryReader.forEachEntry(from:)` resumes at one.
    var cookie: UInt64 = 0

    /// The protocol's type (`.unknown` without ftype: the caller reads the inode's mode).
    var nodeType: NodeType { fileType.map(XFSDirectoryFormat.nodeType(ftype:)) ?? .unknown }

    var protocolEntry: DirectoryEntry { DirectoryEntry(name: name, node: inode, type: nodeType) }
}

extension XFSGeometry {
    /// Whether `ino` names an AG the filesystem has (XFS_INO_TO_AGNO); the inode reader checks
    /// the rest when it reads the inode.
    func plausibleInode(_ ino: UInt64) -> Bool {
        let shift = UInt64(agBlockLog) + UInt64(inodesPerBlockLog)
        guard ino != 0, shift < 64 else { return false }
        return ino >> shift < UInt64(agCount)
    }
}
