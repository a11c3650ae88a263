import GuestFSBlock
import GuestFSFilesystem

/// Read-ahead into the io_manager's block cache: one device read of a run of blocks instead of
/// one per block. libext2fs reads an inode table one 4 KiB block at a time, and a walk visits
/// a directory's inodes in hash order, so on a cold image every block was its own synchronous
/// read that the page cache's read-ahead did not catch (random order): 100 000 cold stats cost
/// 6 250 reads, 15 s here (bench/million-files.sh). The kernel's ext4 reads inode tables ahead
/// in runs for the same reason (`inode_readahead_blks`, ext4_get_inode_loc).
extension IOManagerBridge.ChannelContext {
    /// Reads `blocks` blocks of `blockSize` bytes from `offset` and caches those not cached yet.
    ///
    /// Best effort: a failed read caches nothing and reports nothing, since the single-block
    /// read libext2fs makes next meets the same fault and reports it with its context. Nothing
    /// happens when the run is not one the cache keeps; callers ask only when the block they
    /// are about to read is missing.
    /// Blocks a write operation holds (`gather`) win over the device, as in the read callback.
    func readAhead(at offset: UInt64, blocks: Int, blockSize: Int) {
        guard blocks > 1, blocks <= Self.maxReadaheadBlocks, IOChannelCache.cacheable(blockSize) else { return }
        let (length, overflow) = blocks.multipliedReportingOverflow(by: blockSize)
        guard !overflow, offset.addingReportingOverflow(UInt64(length)).overflow == false,
              offset + UInt64(length) <= device.size else { return }
        if readaheadBuffer.count < length {
            readaheadBuffer.deallocate()
            readaheadBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 4096)
        }
        let run = UnsafeMutableRawBufferPointer(rebasing: readaheadBuffer[..<length])
        do { try device.read(into: run, at: offset) } catch { return }
        gather.overlay(at: offset, run)
        for i in 0..<blocks {
            let blockOffset = offset + UInt64(i * blockSize)
            // A cached block is as new as the device or newer (write-through): keep it.
            guard !cache.contains(blockOffset, size: blockSize) else { continue }
            cache.store(at: blockOffset, UnsafeRawBufferPointer(rebasing: run[(i * blockSize)..<((i + 1) * blockSize)]))
        }
    }

    /// The longest run read ahead at once: 64 blocks (256 KiB at 4 KiB), a sixteenth of the
    /// cache, so one run cannot push out what the current operation still uses.
    static let maxReadaheadBlocks = 64
}
