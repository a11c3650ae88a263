/// The superblock summary counters as the kernel recomputes them after recovery.
///
/// With lazy superblock counters (XFS_SB_VERSION2_LAZYSBCOUNTBIT, always on v5) the kernel
/// does not log sb_icount, sb_ifree and sb_fdblocks in every transaction, so after a crash the
/// superblock's copies are stale; at mount of a filesystem that needed recovery it sums the AG
/// headers instead (xfs_initialize_perag_data): inodes from each AGI (agi_count, agi_freecount),
/// free blocks from each AGF (agf_freeblks + agf_flcount + agf_btreeblks). A driver that opened
/// through a recovery overlay takes its statfs numbers from here.
struct XFSSummaryCounters: Sendable, Equatable {
    var inodeCount: UInt64
    var freeInodes: UInt64
    var freeBlocks: UInt64
}

extension XFSLogRecovery {
    /// Sums the AGFs and AGIs read through `device` (the recovery overlay). Throws for an AG
    /// header that is damaged (bad magic, CRC, UUID or sequence number).
    static func summaryCounters(device: any BlockDevice, geometry: XFSGeometry) throws -> XFSSummaryCounters {
        var counters = XFSSummaryCounters(inodeCount: 0, freeInodes: 0, freeBlocks: 0)
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
            counters.inodeCount += UInt64(try agi.u32(16))
            counters.freeInodes += UInt64(try agi.u32(28))
        }
        return counters
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
