import GuestFSBlock
import GuestFSFilesystem

/// The superblock summary counters as the kernel recomputes them after recovery.
///
/// With lazy superblock counters (XFS_SB_VERSION2_LAZYSBCOUNTBIT, always on v5) the kernel
/// does not log sb_icount, sb_ifree and sb_fdblocks in every transaction, so after a crash the
/// superblock's copies are stale; at mount of a filesystem that needed recovery it sums the AG
/// headers instead (xfs_initialize_perag_data): inodes from each AGI (agi_count, agi_freecount),
/// free blocks from each AGF (agf_freeblks + agf_flcount + agf_btreeblks). A driver that opened
/// through a recovery overlay takes its statfs numbers from here.
///
/// The kernel's mount also frees leftover copy-on-write staging extents (refcount B+tree
/// records in the CoW domain, xfs_reflink_recover_cow), so their blocks count as free here too.
/// The inodes left on the AGI unlinked lists (unlinked but still open, or not yet inactivated, at
/// the crash) are freed by the kernel's mount too (xlog_recover_process_iunlinks): they are
/// counted in `unlinkedInodes`, and `freeInodes` counts them as free. Blocks such an inode still
/// holds, and an inode chunk its freeing would release, are not counted.
struct XFSSummaryCounters: Sendable, Equatable {
    var inodeCount: UInt64
    var freeInodes: UInt64
    var freeBlocks: UInt64
    var unlinkedInodes: UInt64 = 0
    /// Of `freeBlocks`, the CoW staging blocks the kernel's mount frees.
    var cowStagingBlocks: UInt64 = 0
}

extension XFSLogRecovery {
    /// Sums the AGFs and AGIs read through `device` (the recovery overlay). Throws for an AG
    /// header that is damaged (bad magic, CRC, UUID or sequence number).
    ///
    /// `unfinished` (XFSLogReport.unfinishedIntents) adds the extents of EFIs without their EFD,
    /// which the kernel frees after replay.
    static func summaryCounters(device: any BlockDevice, geometry: XFSGeometry,
                                unfinished: [XFSLogIntent] = []) throws -> XFSSummaryCounters {
        var counters = XFSSummaryCounters(inodeCount: 0, freeInodes: 0, freeBlocks: 0)
        for intent in unfinished where intent.type == XFSLogItemType.efi {
            counters.freeBlocks += intent.extents.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        }
        let sector = Int(geometry.sectorSize)
        guard sector >= 512, sector <= 32768 else {
            throw ImageError(offset: 0, structure: "superblock", reason: "sector size \(sector)", errno: .ioError)
        }
        for ag in 0 ..< geometry.agCount {
            guard let agStart = geometry.byteOffset(fsblock: UInt64(ag) << UInt64(geometry.agBlockLog)) else {
                throw ImageError(offset: 0, structure: "AG \(ag)", reason: "AG lies outside the filesystem", errno: .ioError)
            }
            let agf = XFSBytes(try device.readBytes(at: agStart + UInt64(sector), count: sector),
                               structure: "AGF \(ag)", deviceOffset: agStart + UInt64(sector))
            let agi = XFSBytes(try device.readBytes(at: agStart + 2 * UInt64(sector), count: sector),
                               structure: "AGI \(ag)", deviceOffset: agStart + 2 * UInt64(sector))
            // xfs_format.h struct xfs_agf / struct xfs_agi.
            try check(agf, magic: 0x5841_4746, seqno: ag, crc: 216, uuid: 64, geometry: geometry)
            try check(agi, magic: 0x5841_4749, seqno: ag, crc: 312, uuid: 296, geometry: geometry)
            let free = UInt64(try agf.u32(52)) + UInt64(try agf.u32(48)) + UInt64(try agf.u32(60))
            counters.freeBlocks += free
            let refcountRoot = try agf.u32(88), refcountLevel = try agf.u32(92)
            if geometry.isV5, refcountRoot != 0, refcountLevel != 0 {
                let staged = try cowStagingBlocks(device: device, geometry: geometry, ag: ag,
                                                  root: refcountRoot, levels: refcountLevel)
                counters.freeBlocks += staged
                counters.cowStagingBlocks += staged
            }
            counters.inodeCount += UInt64(try agi.u32(16))
            counters.freeInodes += UInt64(try agi.u32(28))
            let unlinked = try unlinkedInodes(device: device, geometry: geometry, ag: ag, agi: agi)
            counters.unlinkedInodes += unlinked
            counters.freeInodes += unlinked
        }
        return counters
    }

    /// The blocks of the CoW staging extents in AG `ag`'s refcount B+tree (xfs_format.h
    /// `struct xfs_refcount_rec`: rc_startblock with XFS_REFC_COWFLAG, the top bit, for the CoW
    /// domain; rc_blockcount; rc_refcount). CoW records sort after every shared-extent record,
    /// so only the children whose key range reaches the CoW domain are read.
    static func cowStagingBlocks(device: any BlockDevice, geometry: XFSGeometry, ag: UInt32, root: UInt32, levels: UInt32) throws -> UInt64 {
        // xfs_format.h XFS_BTREE_MAXLEVELS bounds the depth; the visited set stops loops.
        guard levels <= 9 else {
            throw ImageError(structure: "AGF \(ag)", reason: "refcount B+tree of \(levels) levels", errno: .ioError)
        }
        let cowFlag: UInt32 = 1 << 31
        let header = 56   // short-form v5 B+tree block header
        let blockSize = Int(geometry.blockSize)
        var total: UInt64 = 0
        var visited: Set<UInt32> = []
        var pending: [(block: UInt32, level: UInt32)] = [(root, levels - 1)]
        while let (agBlock, level) = pending.popLast() {
            guard agBlock < geometry.agBlocks, visited.insert(agBlock).inserted, visited.count <= 1 << 20,
                  let offset = geometry.byteOffset(fsblock: UInt64(ag) << UInt64(geometry.agBlockLog) | UInt64(agBlock)) else {
                throw ImageError(structure: "refcount B+tree of AG \(ag)", reason: "block \(agBlock) is outside the AG or seen twice", errno: .ioError)
            }
            let b = XFSBytes(try device.readBytes(at: offset, count: blockSize),
                             structure: "refcount B+tree block \(agBlock) of AG \(ag)", deviceOffset: offset)
            guard try b.u32(0) == 0x5233_4643 else { throw b.damaged("bad magic") }   // R3FC
            guard XFSChecksum.verify(b.bytes, crcOffset: 52) else { throw b.damaged("CRC mismatch") }
            guard try b.slice(32, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
            guard UInt32(try b.u16(4)) == level else { throw b.damaged("level \(try b.u16(4)), expected \(level)") }
            let count = Int(try b.u16(6))
            if level == 0 {
                guard header + count * 12 <= blockSize else { throw b.damaged("\(count) records do not fit") }
                for i in 0 ..< count where try b.u32(header + i * 12) & cowFlag != 0 {
                    total += UInt64(try b.u32(header + i * 12 + 4))
                }
            } else {
                let maxRecords = (blockSize - header) / 8
                guard count <= maxRecords else { throw b.damaged("\(count) keys do not fit") }
                for i in 0 ..< count {
                    let nextKey = i + 1 < count ? try b.u32(header + (i + 1) * 4) : UInt32.max
                    if nextKey > cowFlag {
                        pending.append((try b.u32(header + maxRecords * 4 + i * 4), level - 1))
                    }
                }
            }
        }
        return total
    }

    /// The inodes on AG `ag`'s 64 unlinked lists (agi_unlinked[] heads at byte 40, each inode's
    /// di_next_unlinked at byte 96 of xfs_dinode), with loops and bad numbers refused.
    static func unlinkedInodes(device: any BlockDevice, geometry: XFSGeometry, ag: UInt32, agi: XFSBytes) throws -> UInt64 {
        let nullAgino: UInt32 = 0xFFFF_FFFF
        let perBlockLog = UInt32(geometry.inodesPerBlockLog)
        var seen: Set<UInt32> = []
        for bucket in 0 ..< 64 {
            var agino = try agi.u32(40 + 4 * bucket)
            while agino != nullAgino {
                guard seen.insert(agino).inserted, seen.count <= 1 << 20 else { throw agi.damaged("unlinked list \(bucket) loops") }
                let agBlock = agino >> perBlockLog
                guard agBlock < geometry.agBlocks,
                      let block = geometry.byteOffset(fsblock: UInt64(ag) << UInt64(geometry.agBlockLog) | UInt64(agBlock)) else {
                    throw agi.damaged("unlinked list \(bucket) names AG inode \(agino) outside the AG")
                }
                let at = block + UInt64(agino & ((1 << perBlockLog) - 1)) * UInt64(geometry.inodeSize)
                let inode = XFSBytes(try device.readBytes(at: at, count: 128), structure: "inode \(agino) of AG \(ag)", deviceOffset: at)
                guard try inode.u16(0) == 0x494E else { throw inode.damaged("unlinked inode has no inode magic") }
                agino = try inode.u32(96)
            }
        }
        return UInt64(seen.count)
    }

    private static func check(_ b: XFSBytes, magic: UInt32, seqno: UInt32, crc: Int, uuid: Int, geometry: XFSGeometry) throws {
        guard try b.u32(0) == magic else { throw b.damaged("bad magic") }
        guard try b.u32(8) == seqno else { throw b.damaged("sequence number \(try b.u32(8))") }
        if geometry.isV5 {
            guard XFSChecksum.verify(b.bytes, crcOffset: crc) else { throw b.damaged("CRC mismatch") }
            guard try b.slice(uuid, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
        }
    }
}
