import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

extension Ext2Filesystem {
    /// Before libext2fs reads inode `number`, reads the run of its group's inode table around
    /// the inode's block into the io_manager's cache when that block is not there
    /// (IOChannelReadahead.swift says why). Runs are aligned within the table, as the kernel's
    /// are, so the inodes of one directory (allocated together) share one or two runs.
    ///
    /// A run is read on its second miss among the last `recentInodeMissLimit`, not the first:
    /// a walk that only looks up directories (`find`) meets each run once, for one inode, and
    /// reading 64 blocks for it copied the whole inode table through the server (a sixth of its
    /// time); a walk that stats a directory's files (in hash order, across a few runs) meets
    /// the run again soon.
    ///
    /// Only a hint: values from the group descriptors are checked and any doubt means no
    /// read-ahead, and ext2fs_read_inode2 then reads and checks the block as it always does.
    /// Called under the lock.
    func readAheadInodeTable(for number: UInt32, fs: ext2_filsys) {
        let perGroup = superblock.inodesPerGroup
        let inodeSize = UInt64(superblock.inodeSize)
        let size = UInt64(blockSize)
        guard number >= 1, perGroup > 0, inodeSize > 0, size > 0,
              let context = IOManagerBridge.context(of: fs.pointee.io) else { return }
        let index = UInt64(number - 1)
        let group = index / perGroup
        guard group < UInt64(fs.pointee.group_desc_count) else { return }
        let (byteInTable, overflow) = (index % perGroup).multipliedReportingOverflow(by: inodeSize)
        guard !overflow else { return }
        let tableBlocks = UInt64(fs.pointee.inode_blocks_per_group)
        let blockInTable = byteInTable / size
        guard blockInTable < tableBlocks else { return }
        let table = UInt64(ext2fs_inode_table_loc(fs, dgrp_t(group)))
        guard table != 0 else { return }
        let runBlocks = UInt64(IOManagerBridge.ChannelContext.maxReadaheadBlocks)
        let start = blockInTable - blockInTable % runBlocks
        let count = min(runBlocks, tableBlocks - start)
        let (first, o1) = table.addingReportingOverflow(start)
        let (offset, o2) = first.multipliedReportingOverflow(by: size)
        guard !o1, !o2 else { return }
        // The run starts at the aligned block; the cache check is on the inode's own block.
        let (ownBlock, o3) = table.addingReportingOverflow(blockInTable)
        let (own, o4) = ownBlock.multipliedReportingOverflow(by: size)
        guard !o3, !o4, !context.cache.contains(own, size: blockSize) else { return }
        guard let seen = recentInodeTableMisses.firstIndex(of: first) else {
            if recentInodeTableMisses.count >= Self.recentInodeMissLimit { recentInodeTableMisses.removeFirst() }
            recentInodeTableMisses.append(first)
            return
        }
        recentInodeTableMisses.remove(at: seen)
        context.readAhead(at: offset, blocks: Int(count), blockSize: blockSize)
    }

    /// Runs remembered as missed once: 16 runs of 64 blocks span 16 384 inodes of 256 bytes,
    /// a directory that large read in hash order still finds its runs again.
    static var recentInodeMissLimit: Int { 16 }
}
