import GuestFSBlock
import GuestFSFilesystem

/// The superblock facts every XFS decoder needs (xfs_format.h `struct xfs_dsb`; "XFS
/// Algorithms & Data Structures" §10 "Superblocks"), gathered once so the directory,
/// attribute, inode and log decoders do not each parse the superblock.
struct XFSGeometry: Sendable {
    /// sb_blocksize and its log2, sb_blocklog.
    var blockSize: UInt32
    var blockLog: UInt8
    /// sb_sectsize: the unit of AG headers (AGF/AGI/AGFL each sit in one sector).
    var sectorSize: UInt32
    /// sb_inodesize, sb_inopblog (log2 of inodes per block).
    var inodeSize: UInt16
    var inodesPerBlockLog: UInt8
    /// sb_agblocks, sb_agblklog (bits of the AG block number in an fsblock / inode number),
    /// sb_agcount.
    var agBlocks: UInt32
    var agBlockLog: UInt8
    var agCount: UInt32
    /// sb_dirblklog: a directory block is `blockSize << dirBlockLog` bytes.
    var dirBlockLog: UInt8
    /// Version 5 (sb_versionnum & 0xf == 5): CRCs and self-describing headers on all metadata.
    var isV5: Bool
    /// Directory entries carry a file type byte (v5 always; v4 with XFS_SB_VERSION2_FTYPE).
    var hasFtype: Bool
    /// ascii-ci (mkfs.xfs -n version=ci): names compare and hash case-insensitively (ASCII only).
    var asciiCI: Bool
    /// The UUID v5 metadata headers carry: sb_meta_uuid when META_UUID is set, else sb_uuid.
    var metaUUID: [UInt8]
    /// NREXT64 (incompat bit 0x20): 64-bit data-fork extent counts in the inode.
    var hasNrext64: Bool
    /// BIGTIME (incompat bit 0x8): inode timestamps are nanoseconds since 1901 in one 64-bit field.
    var hasBigtime: Bool

    var dirBlockSize: UInt32 { blockSize << UInt32(dirBlockLog) }

    /// The byte offset of filesystem block `fsblock` (AG number in the high bits, AG block in
    /// the low `agBlockLog` bits: xfs_format.h XFS_FSB_TO_DADDR), or nil when it names an AG or
    /// block the filesystem does not have.
    func byteOffset(fsblock: UInt64) -> UInt64? {
        // agBlockLog comes from the superblock: a value of 64 or more leaves no AG bits.
        let mask: UInt64 = agBlockLog >= 64 ? .max : (1 << UInt64(agBlockLog)) - 1
        let ag = agBlockLog >= 64 ? 0 : fsblock >> UInt64(agBlockLog)
        let agBlock = fsblock & mask
        guard ag < UInt64(agCount), agBlock < UInt64(agBlocks) else { return nil }
        let (linear, o1) = ag.multipliedReportingOverflow(by: UInt64(agBlocks))
        let (block, o2) = linear.addingReportingOverflow(agBlock)
        let (bytes, o3) = block.multipliedReportingOverflow(by: UInt64(blockSize))
        return o1 || o2 || o3 ? nil : bytes
    }

    /// The 512-byte "daddr" v5 headers record as their own location (`bb_blkno`, `blkno`).
    func daddr(fsblock: UInt64) -> UInt64? { byteOffset(fsblock: fsblock).map { $0 >> 9 } }
}

/// One data- or attribute-fork extent (xfs_format.h `xfs_bmbt_irec`): `blockCount` blocks of
/// the file starting at file block `fileOffset` live at filesystem block `startBlock`.
/// Unwritten (preallocated) extents read as zeros.
struct XFSExtent: Sendable, Equatable {
    var fileOffset: UInt64
    var startBlock: UInt64
    var blockCount: UInt64
    var unwritten: Bool
}

/// What an inode fork holds once the inode reader has decoded it (xfs_format.h
/// `xfs_dinode_fmt`): the bytes of a local (inline) fork, or the extent list of an extents or
/// B+tree fork (the B+tree is walked to its leaves by the inode reader, so directory and
/// attribute decoders see one form).
enum XFSForkContents: Sendable {
    case local([UInt8])
    case extents([XFSExtent])
}

/// Reads `count` filesystem blocks starting at filesystem block `fsblock` (AG-encoded, as in
/// an extent). Throws for a block outside the filesystem.
typealias XFSBlockReader = (_ fsblock: UInt64, _ count: UInt32) throws -> [UInt8]
