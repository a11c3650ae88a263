import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage

/// The superblock facts the rest of imagemount needs, copied out once at open.
///
/// Field meanings: the ext4 disk layout, "The Super Block" (Linux
/// Documentation/filesystems/ext4/super.rst).
package struct Ext2Superblock: Sendable {
    package let uuid: String
    package let label: String
    package let lastMounted: String
    package let blockSize: UInt64
    /// s_log_block_size (block size = 1024 << it), as libext2fs bounds it.
    let logBlockSize: UInt32
    package let blocksCount: UInt64
    package let freeBlocks: UInt64
    package let reservedBlocks: UInt64
    package let firstDataBlock: UInt64
    package let inodesCount: UInt64
    package let freeInodes: UInt64
    package let overheadClusters: UInt64
    package let compatFeatures: UInt32
    package let incompatFeatures: UInt32
    package let roCompatFeatures: UInt32
    package let journalInode: UInt32
    package let state: UInt16
    package let blocksPerGroup: UInt64
    package let groupCount: UInt64
    package let inodeSize: UInt32
    package let inodesPerGroup: UInt64
    package let descriptorSize: UInt32
    package let reservedGDTBlocks: UInt64
    package let logGroupsPerFlex: UInt32

    // Feature bits, ext4 super.rst "s_feature_compat" / "incompat" / "ro_compat".
    static let compatHasJournal: UInt32 = 0x4
    static let compatSparseSuper2: UInt32 = 0x200
    static let compatExtAttr: UInt32 = 0x8
    static let incompatRecover: UInt32 = 0x4
    static let incompatMetaBG: UInt32 = 0x10
    static let incompatFileType: UInt32 = 0x2
    static let incompatJournalDev: UInt32 = 0x8
    static let roCompatSparseSuper: UInt32 = 0x1
    static let roCompatLargeFile: UInt32 = 0x2
    static let roCompatBtreeDir: UInt32 = 0x4

    init(_ s: ext2_super_block) {
        var copy = s
        uuid = withUnsafeBytes(of: &copy.s_uuid) { Self.formatUUID(Array($0)) }
        label = withUnsafeBytes(of: &copy.s_volume_name) { Self.cString(Array($0)) }
        lastMounted = withUnsafeBytes(of: &copy.s_last_mounted) { Self.cString(Array($0)) }
        logBlockSize = min(s.s_log_block_size, 6)
        blockSize = UInt64(1024) << UInt64(logBlockSize)
        blocksCount = ext2fs_blocks_count(&copy)
        freeBlocks = ext2fs_free_blocks_count(&copy)
        reservedBlocks = ext2fs_r_blocks_count(&copy)
        firstDataBlock = UInt64(s.s_first_data_block)
        inodesCount = UInt64(s.s_inodes_count)
        freeInodes = UInt64(s.s_free_inodes_count)
        overheadClusters = UInt64(s.s_overhead_clusters)
        compatFeatures = s.s_feature_compat
        incompatFeatures = s.s_feature_incompat
        roCompatFeatures = s.s_feature_ro_compat
        journalInode = s.s_journal_inum
        state = s.s_state
        blocksPerGroup = UInt64(max(s.s_blocks_per_group, 1))
        let dataBlocks = blocksCount > firstDataBlock ? blocksCount - firstDataBlock : 0
        groupCount = dataBlocks / blocksPerGroup + (dataBlocks % blocksPerGroup == 0 ? 0 : 1)   // no overflow near 2^64
        inodeSize = s.s_rev_level == 0 ? 128 : UInt32(s.s_inode_size)
        inodesPerGroup = UInt64(s.s_inodes_per_group)
        descriptorSize = (s.s_feature_incompat & 0x80) != 0 && s.s_desc_size >= 64 ? UInt32(s.s_desc_size) : 32
        reservedGDTBlocks = UInt64(s.s_reserved_gdt_blocks)
        logGroupsPerFlex = UInt32(s.s_log_groups_per_flex)
    }

    /// Has a journal (ext3/ext4).
    package var hasJournal: Bool { compatFeatures & Self.compatHasJournal != 0 }
    /// The journal holds transactions not yet written to their home locations.
    package var needsRecovery: Bool { incompatFeatures & Self.incompatRecover != 0 }

    /// "ext2", "ext3" or "ext4", decided as blkid decides it (libblkid superblocks/ext.c):
    /// ext4 when a feature beyond ext3's set is present, ext3 when there is a journal.
    package var typeName: String {
        let ext3Incompat = Self.incompatFileType | Self.incompatRecover | Self.incompatMetaBG
        let ext3RoCompat = Self.roCompatSparseSuper | Self.roCompatLargeFile | Self.roCompatBtreeDir
        if incompatFeatures & ~ext3Incompat != 0 || roCompatFeatures & ~ext3RoCompat != 0 { return "ext4" }
        return hasJournal ? "ext3" : "ext2"
    }

    /// Whether `device` carries an ext2/3/4 superblock magic (0xEF53 at byte 1024+56).
    package static func probe(_ device: any BlockDevice) -> Bool {
        guard device.size >= 2048, let magic = try? device.readBytes(at: 1024 + 56, count: 2) else { return false }
        return magic[0] == 0x53 && magic[1] == 0xEF
    }

    static let incompatExtents: UInt32 = 0x40
    static let incompatInlineData: UInt32 = 0x8000
    static let roCompatHugeFile: UInt32 = 0x8
    /// EFSCORRUPTED, the kernel's errno for a corrupt inode (EUCLEAN, include/linux/jbd2.h).
    static let errnoCorrupted = Errno(rawValue: 117)

    /// The largest file size the kernel allows on this filesystem (fs/ext4/super.c):
    /// `ext4_max_size` for extent-mapped files (2^32 - 1 logical blocks, and without huge_file
    /// 2^32 - 1 512-byte sectors of i_blocks) and `ext4_max_bitmap_size` for block-mapped ones
    /// (12 direct blocks plus single, double and triple indirect, less the indirect blocks
    /// themselves when i_blocks limits the file). Both are capped at MAX_LFS_FILESIZE (2^63 - 1).
    package func maxFileSize(extents: Bool) -> UInt64 {
        let bits = UInt64(10 + min(logBlockSize, 6))
        let hugeFiles = roCompatFeatures & Self.roCompatHugeFile != 0
        let maxLFS = UInt64(Int64.max)
        if extents {
            var upper = maxLFS
            if !hugeFiles { upper = (((UInt64(1) << 32) - 1) >> (bits - 9)) << bits }
            return min(((UInt64(1) << 32) - 1) << bits, upper)
        }
        let ppb = UInt64(1) << (bits - 2)
        var upper: UInt64 = hugeFiles ? (UInt64(1) << 48) - 1 : ((UInt64(1) << 32) - 1) >> (bits - 9)
        var res: UInt64 = 12 + ppb + ppb * ppb + ppb * ppb * ppb
        let treeMeta: UInt64 = 1 + (1 + ppb) + (1 + ppb + ppb * ppb)
        if res + treeMeta > upper {
            res = upper
            upper -= 12
            var meta: UInt64 = 1
            upper -= ppb
            if upper < ppb * ppb {
                meta += 1 + (upper + ppb - 1) / ppb
            } else {
                meta += 1 + ppb
                upper -= ppb * ppb
                meta += 1 + (upper + ppb - 1) / ppb + (upper + ppb * ppb - 1) / (ppb * ppb)
            }
            res -= meta
        }
        return min(res << bits, maxLFS)
    }

    static func formatUUID(_ b: [UInt8]) -> String {
        let hex = b.map { String($0, radix: 16).leftPadded(to: 2) }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }

    static func cString(_ b: [UInt8]) -> String {
        String(decoding: b.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
