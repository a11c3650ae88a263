import GuestFSBlock
import GuestFSFilesystem

/// statfs as the kernel's xfs_fs_statfs reports it on a read-only mount (fs/xfs/xfs_super.c):
/// f_blocks is sb_dblocks less the internal log; f_bfree = f_bavail is the free block counter
/// less what the allocator never hands out (xfs_fdblocks_unavailable: m_alloc_set_aside, 8
/// blocks per AG, plus the free-space btree blocks beyond their roots counted when AGFs are
/// read); a read-only mount reserves nothing else (no reserve pool, no per-AG reservations).
/// Inodes: f_files is what is allocated plus what the free blocks could hold, capped by
/// imax_pct (maxicount) and never below sb_icount; f_ffree what of that is not in use.
extension XFSFilesystem {
    /// XFS_ALLOCBT_AGFL_RESERVE + 4 (xfs_alloc_set_aside).
    static let setAsidePerAG: UInt64 = 8
    /// XFS_MAXINUMBER.
    static let maxInodeNumber: UInt64 = (1 << 56) - 1
    /// XFS_INODES_PER_CHUNK.
    static let inodesPerChunk: UInt64 = 64

    public func usage() throws -> FilesystemUsage {
        let sb = superblock
        var freeBlocks = sb.freeDataBlocks, icount = sb.inodeCount, ifree = sb.freeInodes
        var allocbtBlocks: UInt64 = 0
        if countersFromAGs {
            // After a log recovery the kernel recounts from the AG headers (xfs_initialize_perag_data,
            // XFSLogRecovery.summaryCounters), reading every AGF, so the free-space btree blocks
            // beyond their roots enter m_allocbt_blks (xfs_alloc_read_agf; the rmapbt's share is
            // the per-AG reservation's, not the allocator's).
            if let counters = recoveredCounters {
                (freeBlocks, icount, ifree) = (counters.freeBlocks, counters.inodeCount, counters.freeInodes)
            }
            let headers = XFSAGHeaderReader(device: reader, geometry: geometry)
            for ag in 0 ..< geometry.agCount {
                let agf = try headers.freeSpace(ag)
                let rmapShare = sb.roCompatFeatures & 0x2 != 0 && agf.rmapBlocks > 0 ? UInt64(agf.rmapBlocks) - 1 : 0
                allocbtBlocks += UInt64(agf.btreeBlocks) > rmapShare ? UInt64(agf.btreeBlocks) - rmapShare : 0
            }
        }
        let logBlocks = sb.logStart != 0 ? UInt64(sb.logBlocks) : 0
        let total = sb.dataBlocks > logBlocks ? sb.dataBlocks - logBlocks : 0
        let unavailable = UInt64(geometry.agCount) * Self.setAsidePerAG + allocbtBlocks
        let free = freeBlocks > unavailable ? freeBlocks - unavailable : 0

        let inopblog = UInt64(geometry.inodesPerBlockLog)
        let fake = free < (Self.maxInodeNumber >> inopblog) ? free << inopblog : Self.maxInodeNumber
        var files = min(icount.addingReportingOverflow(fake).overflow ? Self.maxInodeNumber : icount + fake, Self.maxInodeNumber)
        if let maxInodes = maxInodeCount { files = min(files, maxInodes) }
        files = max(files, sb.inodeCount)
        let used = icount > ifree ? icount - ifree : 0
        return FilesystemUsage(blockSize: UInt64(geometry.blockSize), totalBlocks: total, freeBlocks: free, availableBlocks: free,
                               totalInodes: files, freeInodes: files > used ? files - used : 0, maxNameLength: 255)
    }

    /// M_IGEO(mp)->maxicount (xfs_ialloc_setup_geometry): imax_pct of the data blocks, rounded
    /// down to whole inode chunks, in inodes; nil when imax_pct is 0 (no cap).
    var maxInodeCount: UInt64? {
        let sb = superblock
        guard sb.inodeMaxPercent != 0 else { return nil }
        let perBlockLog = UInt64(geometry.inodesPerBlockLog)
        let chunkBlocks = max(Self.inodesPerChunk >> perBlockLog, 1)
        let blocks = sb.dataBlocks / 100 * UInt64(sb.inodeMaxPercent) + sb.dataBlocks % 100 * UInt64(sb.inodeMaxPercent) / 100
        return (blocks / chunkBlocks * chunkBlocks) << perBlockLog
    }
}
