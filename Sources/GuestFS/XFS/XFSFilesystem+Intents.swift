import GuestFSBlock
import GuestFSFilesystem

/// Unfinished bmap intents (BUIs) that log replay could not carry out in the overlay: those on a
/// fork in B+tree format, or whose change would turn the fork into one (the kernel allocates a
/// bmbt block then, xfs_bmap_extents_to_btree, which an in-memory replay has no free space map
/// to do). The kernel finishes them after replay (xlog_recover_process_intents →
/// xfs_bmap_update_recover_work); here they are applied, in log order, to the extent list this
/// driver resolves for the inode, so reads, SEEK_DATA and st_blocks show the finished state.
extension XFSFilesystem {
    /// Applies `intents` to `extents` as XFSLogBmapIntents.swift does in the overlay; returns
    /// the change in the fork's block count.
    static func apply(_ intents: [XFSBmapIntent], to extents: inout [XFSExtent]) -> Int64 {
        var delta: Int64 = 0
        for bmap in intents {
            if bmap.isMap {
                // A range already mapped is left as it is (the overlay path does the same).
                if let mapped = XFSLogReplay.map(bmap, into: &extents) { delta += Int64(mapped) }
            } else {
                delta -= Int64(XFSLogReplay.unmap(bmap, from: &extents))
            }
        }
        return delta
    }

    /// di_nblocks (in 512-byte units) with the deferred intents' blocks added or taken away.
    func blocksAfterDeferredBmaps(_ inode: XFSInode, recorded: UInt64) throws -> UInt64 {
        guard let pending = deferredBmaps[inode.number] else { return recorded }
        var delta: Int64 = 0
        for attr in [false, true] {
            let intents = pending.filter { $0.isAttrFork == attr }
            guard !intents.isEmpty else { continue }
            let (bytes, format, count) = attr ? (inode.attrFork, inode.attrFormat, inode.attrExtentCount)
                                              : (inode.dataFork, inode.format, inode.dataExtentCount)
            guard let bytes, let format, format == .extents || format == .btree else { continue }
            var extents = try XFSBmapBtree.extents(fork: bytes, format: format, extentCount: count, inode: inode.number,
                                                   forkName: attr ? "attribute" : "data", geometry: geometry,
                                                   readBlock: { try self.readBlocks($0, 1) })
            delta += Self.apply(intents, to: &extents)
        }
        let perBlock = Int64(geometry.blockSize / 512)
        let (change, overflow) = delta.multipliedReportingOverflow(by: perBlock)
        guard !overflow else { return recorded }
        return change >= 0 ? recorded.saturatingAdd(UInt64(change)) : recorded - min(recorded, UInt64(-change))
    }
}
