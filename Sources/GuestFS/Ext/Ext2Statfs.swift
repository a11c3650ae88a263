import GuestFSBlock
import GuestFSFilesystem


extension Ext2Filesystem {
    /// The statfs figures of this filesystem; on a writable one, as they are now.
    package func usage() -> FilesystemUsage {
        let sb = isWritable ? ((try? currentSuperblock()) ?? superblock) : superblock
        let overhead = sb.overheadClusters != 0 ? sb.overheadClusters : computedOverhead()
        let total = sb.blocksCount > overhead ? sb.blocksCount - overhead : 0
        // ext4_calculate_resv_clusters: 2% of the blocks, at most 4096, only with extents.
        let extents = sb.incompatFeatures & 0x40 != 0
        let delallocReserve = extents ? min(sb.blocksCount / 50, 4096) : 0
        // s_r_blocks_count comes from the image unchecked (libext2fs does not bound it): a count
        // near 2^64 is a reserve larger than the filesystem, and leaves nothing available, as the
        // kernel's comparison `f_bfree < r_blocks + resv` makes it.
        let reserve = sb.reservedBlocks.saturatingAdd(delallocReserve)
        return FilesystemUsage(blockSize: sb.blockSize, totalBlocks: total, freeBlocks: sb.freeBlocks,
                               availableBlocks: sb.freeBlocks > reserve ? sb.freeBlocks - reserve : 0,
                               totalInodes: sb.inodesCount, freeInodes: sb.freeInodes)
    }

    /// The metadata overhead when the superblock does not record it (s_overhead_clusters = 0),
    /// computed as ext4_calculate_overhead does: the blocks before the first group, each
    /// group's superblock backup, descriptors, reserved descriptors, bitmaps and inode table,
    /// and the journal's blocks.
    func computedOverhead() -> UInt64 {
        let sb = superblock
        let descriptorsPerBlock = max(sb.blockSize / UInt64(sb.descriptorSize), 1)
        let gdtBlocks = (sb.groupCount + descriptorsPerBlock - 1) / descriptorsPerBlock
        let inodeTableBlocks = (sb.inodesPerGroup * UInt64(sb.inodeSize) + sb.blockSize - 1) / sb.blockSize
        let sparse = sb.roCompatFeatures & Ext2Superblock.roCompatSparseSuper != 0
        func hasBackup(_ group: UInt64) -> Bool {
            if !sparse || group <= 1 { return true }
            for base: UInt64 in [3, 5, 7] {
                var power = base
                while power < group { power *= base }
                if power == group { return true }
            }
            return false
        }
        // Saturating sums: every term comes from the superblock (libext2fs bounds the group count
        // by the descriptors it read, but not the sums), and an overhead past the block count
        // only means f_blocks is 0.
        var overhead = sb.firstDataBlock
        let backupBlocks = UInt64(1).saturatingAdd(gdtBlocks).saturatingAdd(sb.reservedGDTBlocks)
        for group in 0..<sb.groupCount {
            if hasBackup(group) { overhead = overhead.saturatingAdd(backupBlocks) }
            overhead = overhead.saturatingAdd(inodeTableBlocks.saturatingAdd(2))
            if overhead == .max { break }
        }
        if sb.hasJournal, sb.journalInode != 0, let journal = try? inode(sb.journalInode) {
            overhead = overhead.saturatingAdd(journal.blocks512.saturatingMultiply(512) / sb.blockSize)
        }
        return overhead
    }
}
