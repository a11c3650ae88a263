import GuestFSBlock
import GuestFSFilesystem

/// Inode items and inode chunk creation (xfs_inode_item_recover.c, xfs_icreate_item.c).
extension XFSLogReplay {
    /// xfs_log_format.h XFS_ILOG_* field flags.
    enum InodeFields {
        static let core: UInt32 = 0x001, dData: UInt32 = 0x002, dExtents: UInt32 = 0x004, dBroot: UInt32 = 0x008
        static let dev: UInt32 = 0x010, aData: UInt32 = 0x040, aExtents: UInt32 = 0x080, aBroot: UInt32 = 0x100
        static let dOwner: UInt32 = 0x200, aOwner: UInt32 = 0x400
        static let dFork: UInt32 = 0x00E, aFork: UInt32 = 0x1C0
    }

    /// xfs_log_format.h `struct xfs_inode_log_format` (56 bytes on 64-bit hosts; the 52-byte
    /// `xfs_inode_log_format_32` of i386 hosts has no pad before ilf_ino).
    struct InodeLogFormat {
        var size: UInt16, fields: UInt32, attrSize: UInt16, dataSize: UInt16
        var ino: UInt64, rdev: UInt32, daddr: UInt64, lengthBBs: UInt32, bufferOffset: UInt32

        init(_ r: XFSLogItemBytes) throws {
            size = try r.u16(2); fields = try r.u32(4); attrSize = try r.u16(8); dataSize = try r.u16(10)
            let base: Int
            switch r.count {
            case 56: base = 16
            case 52: base = 12
            default: throw XFSLogReplayError("inode log format of \(r.count) bytes")
            }
            ino = try r.u64(base); rdev = try r.u32(base + 8)
            daddr = try r.u64(base + 24); lengthBBs = try r.u32(base + 32); bufferOffset = try r.u32(base + 36)
        }
    }

    /// xlog_recover_inode_commit_pass2: the log dinode (host order) becomes the on-disk dinode
    /// (big-endian) with the transaction's LSN, then the logged fork regions go over the forks
    /// and the v3 CRC is recomputed.
    func replayInode(_ item: XFSLogItem, lsn: UInt64) throws {
        let f = try InodeLogFormat(bytes(item, 0))
        guard f.lengthBBs > 0, f.lengthBBs <= 256 else { throw XFSLogReplayError("inode \(f.ino) log item names a buffer of \(f.lengthBBs) BBs") }
        if isCancelled(daddr: f.daddr, length: UInt16(f.lengthBBs)) {
            report.inodesCancelled += 1
            return
        }
        guard item.regions.count >= 2, f.size >= 2, f.size <= 4 else {
            throw XFSLogReplayError("inode \(f.ino) log item has \(item.regions.count) regions")
        }
        let inodeSize = Int(geometry.inodeSize)
        let start = UInt64(f.bufferOffset)
        guard f.daddr < 1 << 54, start + UInt64(inodeSize) <= UInt64(f.lengthBBs) * 512 else {
            throw XFSLogReplayError("inode \(f.ino) at offset \(f.bufferOffset) lies outside its \(f.lengthBBs)-BB buffer")
        }
        let at = f.daddr * 512 + start
        guard at <= overlay.size, UInt64(inodeSize) <= overlay.size - at else {
            throw XFSLogReplayError("inode \(f.ino) buffer lies past the end of the device")
        }
        var dip = try overlay.readBytes(at: at, count: inodeSize)
        guard dip[0] == 0x49, dip[1] == 0x4E else {
            throw XFSLogReplayError("inode \(f.ino): the on-disk inode it replays onto has no inode magic")
        }
        let log = bytes(item, 1)
        guard try log.u16(0) == 0x494E else { throw XFSLogReplayError("inode \(f.ino): log dinode has no inode magic") }
        let version = try log.u8(4)
        let coreSize = geometry.isV5 ? 176 : 100
        let logCoreSize = geometry.isV5 ? 176 : 96   // xfs_log_dinode_size
        guard log.count <= logCoreSize, log.count >= (version >= 3 ? 176 : 96) else {
            throw XFSLogReplayError("inode \(f.ino): log dinode of \(log.count) bytes")
        }
        guard version >= 1, version <= 3, (version == 3) == geometry.isV5 else {
            throw XFSLogReplayError("inode \(f.ino): log dinode version \(version)")
        }

        if dip[4] >= 3 {
            let onDisk = dip[112 ..< 120].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if onDisk != 0, onDisk != UInt64.max, onDisk > lsn {
                report.inodesSkippedAsNewer += 1
                try ownerChangeNotice(f)
                return
            }
        }
        var flushIter = version < 3 ? try log.u16(30) : 0
        if !geometry.isV5 {
            let diskIter = UInt16(dip[30]) << 8 | UInt16(dip[31])
            if flushIter < diskIter, !(diskIter == 0xFFFF && flushIter < 0x7FFF) {
                report.inodesSkippedAsNewer += 1
                return
            }
            flushIter = 0
        }
        let mode = try log.u16(2)
        let format = try log.u8(5)
        switch mode & 0o170000 {
        case 0o100000 where format != 2 && format != 3,
             0o040000 where format != 1 && format != 2 && format != 3:
            throw XFSLogReplayError("inode \(f.ino): log dinode fork format \(format) for mode 0o\(String(mode, radix: 8))")
        default: break
        }
        let forkOffset = Int(try log.u8(82))
        guard forkOffset * 8 <= inodeSize - coreSize else {
            throw XFSLogReplayError("inode \(f.ino): log dinode fork offset \(forkOffset)")
        }

        try convertLogDinode(log, into: &dip, version: version, flushIter: flushIter, lsn: lsn)

        let dataFork = coreSize
        let dataForkSize = forkOffset != 0 ? forkOffset * 8 : inodeSize - coreSize
        let attrFork = coreSize + forkOffset * 8
        let attrForkSize = inodeSize - attrFork
        if f.fields & InodeFields.dev != 0 {
            put32(&dip, dataFork, f.rdev)   // xfs_dinode_put_rdev
        }
        var next = 2
        if f.size > 2 {
            switch f.fields & InodeFields.dFork {
            case InodeFields.dData, InodeFields.dExtents:
                let src = try region(item, next, f.ino)
                guard src.count <= dataForkSize else { throw XFSLogReplayError("inode \(f.ino): data fork region of \(src.count) bytes") }
                dip.replaceSubrange(dataFork ..< dataFork + src.count, with: src)
                next += 1
            case InodeFields.dBroot:
                try copyBmbtRoot(try region(item, next, f.ino), into: &dip, at: dataFork, size: dataForkSize, ino: f.ino)
                next += 1
            case 0: break
            default: throw XFSLogReplayError("inode \(f.ino): data fork flags 0x\(String(f.fields & InodeFields.dFork, radix: 16))")
            }
            if f.fields & InodeFields.aFork != 0 {
                let src = try region(item, next, f.ino)
                switch f.fields & InodeFields.aFork {
                case InodeFields.aData, InodeFields.aExtents:
                    guard forkOffset != 0, src.count <= attrForkSize else {
                        throw XFSLogReplayError("inode \(f.ino): attribute fork region of \(src.count) bytes")
                    }
                    dip.replaceSubrange(attrFork ..< attrFork + src.count, with: src)
                case InodeFields.aBroot:
                    guard forkOffset != 0 else { throw XFSLogReplayError("inode \(f.ino): attribute root without an attribute fork") }
                    try copyBmbtRoot(src, into: &dip, at: attrFork, size: attrForkSize, ino: f.ino)
                default:
                    throw XFSLogReplayError("inode \(f.ino): attribute fork flags 0x\(String(f.fields & InodeFields.aFork, radix: 16))")
                }
            }
        }
        try ownerChangeNotice(f)
        if geometry.isV5 { XFSLogReplay.stampInodeCRC(&dip, at: 0, size: inodeSize) }
        try overlay.writeBytes(dip, at: at)
        report.inodesReplayed += 1
    }

    private func region(_ item: XFSLogItem, _ index: Int, _ ino: UInt64) throws -> [UInt8] {
        guard index < item.regions.count else { throw XFSLogReplayError("inode \(ino) log item lacks region \(index)") }
        return item.regions[index]
    }

    /// A swapext owner change (XFS_ILOG_DOWNER/AOWNER) rewrites the owner of every block of the
    /// inode's bmap B+tree (xfs_recover_inode_owner_change); it is not done here.
    private func ownerChangeNotice(_ f: InodeLogFormat) throws {
        if f.fields & (InodeFields.dOwner | InodeFields.aOwner) != 0 {
            report.notReplayed.append("inode \(f.ino): bmap B+tree owner change (swapext) not replayed")
        }
    }

    /// xfs_log_dinode_to_disk: the same layout, host order to big-endian, the LSN of this
    /// transaction in di_lsn; di_next_unlinked (byte 96) and the CRC are left alone.
    /// Timestamps are one 64-bit value with bigtime (di_flags2 XFS_DIFLAG2_BIGTIME), else
    /// two 32-bit seconds/nanoseconds words.
    func convertLogDinode(_ log: XFSLogItemBytes, into dip: inout [UInt8], version: UInt8, flushIter: UInt16, lsn: UInt64) throws {
        func c16(_ o: Int) throws { put16(&dip, o, try log.u16(o)) }
        func c32(_ o: Int) throws { put32(&dip, o, try log.u32(o)) }
        func c64(_ o: Int) throws { put64(&dip, o, try log.u64(o)) }
        let flags2 = version >= 3 ? try log.u64(120) : 0
        let bigtime = flags2 & 0x8 != 0
        let nrext64 = flags2 & 0x10 != 0
        func time(_ o: Int) throws { if bigtime { try c64(o) } else { try c32(o); try c32(o + 4) } }
        try c16(0); try c16(2)
        dip[4] = try log.u8(4); dip[5] = try log.u8(5)
        dip[6] = 0; dip[7] = 0                     // di_onlink
        try c32(8); try c32(12); try c32(16); try c16(20); try c16(22)
        try time(32); try time(40); try time(48)
        try c64(56); try c64(64); try c32(72)
        dip[82] = try log.u8(82); dip[83] = try log.u8(83)
        try c32(84); try c16(88); try c16(90); try c32(92)
        if version == 3 {
            try c64(104)
            try time(144)
            try c64(120); try c32(128); try c64(152)
            put64(&dip, 112, lsn)
            for i in 132 ..< 144 { dip[i] = 0 }
            dip.replaceSubrange(160 ..< 176, with: log.bytes[160 ..< 176])
            if nrext64 { try c64(24) } else { for i in 24 ..< 32 { dip[i] = 0 } }
        } else {
            put16(&dip, 30, flushIter)
            for i in 24 ..< 30 { dip[i] = 0 }
        }
        // di_nextents/di_anextents or di_big_anextents/di_nrext64_pad: a 32- and a 16-bit word.
        try c32(76); try c16(80)
    }

    /// xfs_bmbt_to_bmdr: the logged root is an in-memory long-form B+tree block (header of 72
    /// bytes on v5, 24 on v4, keys then pointers placed for its own size); the inode keeps
    /// level, numrecs, then keys and pointers placed for the fork's size.
    private func copyBmbtRoot(_ src: [UInt8], into dip: inout [UInt8], at fork: Int, size: Int, ino: UInt64) throws {
        let header = geometry.isV5 ? 72 : 24
        guard src.count >= header, size >= 4 else { throw XFSLogReplayError("inode \(ino): bmap root region of \(src.count) bytes") }
        let level = UInt16(src[4]) << 8 | UInt16(src[5])
        let records = Int(UInt16(src[6]) << 8 | UInt16(src[7]))
        let sourceMax = (src.count - header) / 16
        let destMax = (size - 4) / 16
        guard records <= sourceMax, records <= destMax else {
            throw XFSLogReplayError("inode \(ino): bmap root with \(records) records")
        }
        put16(&dip, fork, level)
        put16(&dip, fork + 2, UInt16(records))
        dip.replaceSubrange(fork + 4 ..< fork + 4 + records * 8, with: src[header ..< header + records * 8])
        let sourcePointers = header + sourceMax * 8, destPointers = fork + 4 + destMax * 8
        dip.replaceSubrange(destPointers ..< destPointers + records * 8, with: src[sourcePointers ..< sourcePointers + records * 8])
    }

    /// xlog_recover_icreate_commit_pass2 and xfs_ialloc_inode_init: an inode chunk allocated
    /// by an icreate item (`struct xfs_icreate_log`, big-endian fields after the host-order
    /// type and size) is written as fresh free inodes, unless its cluster buffers were cancelled.
    ///
    ///     0 icl_type  2 icl_size  4 icl_ag  8 icl_agbno  12 icl_count  16 icl_isize
    ///     20 icl_length  24 icl_gen
    func replayInodeCreate(_ item: XFSLogItem) throws {
        let r = item.regions[0]
        guard r.count >= 28 else { throw XFSLogReplayError("icreate item of \(r.count) bytes") }
        let ag = XFSLogReader.be32(r, 4), agBlock = XFSLogReader.be32(r, 8), count = XFSLogReader.be32(r, 12)
        let inodeSize = XFSLogReader.be32(r, 16), length = XFSLogReader.be32(r, 20), generation = XFSLogReader.be32(r, 24)
        guard ag < geometry.agCount, agBlock != 0, agBlock < geometry.agBlocks, inodeSize == UInt32(geometry.inodeSize),
              count != 0, count <= 64, length != 0, length < geometry.agBlocks, UInt64(agBlock) + UInt64(length) <= UInt64(geometry.agBlocks),
              count >> UInt32(geometry.inodesPerBlockLog) == length else {
            throw XFSLogReplayError("icreate item for AG \(ag) block \(agBlock), \(count) inodes in \(length) blocks is invalid")
        }
        // Inode cluster size (xfs_ialloc_setup_geometry): 8 KiB scaled by inode size on v5
        // when the inode alignment allows, at least one block.
        var clusterBytes: UInt32 = 8192
        if geometry.isV5 {
            let scaled = clusterBytes * (UInt32(geometry.inodeSize) / 256)
            if layout.inodeAlignment >= scaled / geometry.blockSize { clusterBytes = scaled }
        }
        let blocksPerCluster = max(1, clusterBytes / geometry.blockSize)
        let agStart = UInt64(ag) << UInt64(geometry.agBlockLog)
        let clusters = max(1, length / blocksPerCluster)
        var cancelledClusters = 0
        for i in 0 ..< clusters {
            guard let daddr = geometry.daddr(fsblock: agStart + UInt64(agBlock) + UInt64(i) * UInt64(blocksPerCluster)) else { continue }
            if isCancelled(daddr: daddr, length: UInt16(truncatingIfNeeded: blocksPerCluster * geometry.blockSize / 512)) {
                cancelledClusters += 1
            }
        }
        if cancelledClusters > 0 { return }
        guard let start = geometry.byteOffset(fsblock: agStart + UInt64(agBlock)) else {
            throw XFSLogReplayError("icreate item for AG \(ag) block \(agBlock) lies outside the filesystem")
        }
        let isize = Int(inodeSize)
        var chunk = [UInt8](repeating: 0, count: Int(length) * Int(geometry.blockSize))
        let firstIno = UInt64(ag) << (UInt64(geometry.agBlockLog) + UInt64(geometry.inodesPerBlockLog))
            | UInt64(agBlock) << UInt64(geometry.inodesPerBlockLog)
        for i in 0 ..< Int(count) where (i + 1) * isize <= chunk.count {
            let o = i * isize
            chunk[o] = 0x49; chunk[o + 1] = 0x4E
            chunk[o + 4] = geometry.isV5 ? 3 : 2
            put32(&chunk, o + 92, generation)
            put32(&chunk, o + 96, 0xFFFF_FFFF)
            if geometry.isV5 {
                put64(&chunk, o + 152, firstIno + UInt64(i))
                chunk.replaceSubrange(o + 160 ..< o + 176, with: geometry.metaUUID)
                XFSLogReplay.stampInodeCRC(&chunk, at: o, size: isize)
            }
        }
        try overlay.writeBytes(chunk, at: start)
        report.inodeChunksCreated += 1
    }
}

fileprivate func put16(_ b: inout [UInt8], _ o: Int, _ v: UInt16) { b[o] = UInt8(v >> 8); b[o + 1] = UInt8(truncatingIfNeeded: v) }
fileprivate func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) { for i in 0 ..< 4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) } }
fileprivate func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) { for i in 0 ..< 8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64(i))) } }
