import GuestFSBlock
import GuestFSFilesystem

/// Buffer items (xfs_buf_item_recover.c): cancellation, the LSN ordering check, and replay of
/// regular, inode-unlink and dquot buffers.
extension XFSLogReplay {
    /// xlog_recover_buf_commit_pass2.
    func replayBuffer(_ item: XFSLogItem, lsn: UInt64) throws {
        let f = try XFSBufLogFormat(bytes(item, 0))
        let key = BufferKey(daddr: f.daddr, length: f.lengthBBs)
        if f.flags & XFSBufLogFormat.cancel != 0 {
            // The last cancel record of a buffer lets later items for it replay again
            // (xlog_put_buffer_cancelled).
            if let count = cancelled[key] { cancelled[key] = count > 1 ? count - 1 : nil }
            report.buffersCancelled += 1
            return
        }
        if isCancelled(daddr: f.daddr, length: f.lengthBBs) {
            report.buffersCancelled += 1
            return
        }
        guard f.byteOffset <= overlay.size, UInt64(f.byteCount) <= overlay.size - f.byteOffset else {
            throw XFSLogReplayError("logged buffer at daddr 0x\(String(f.daddr, radix: 16)) lies past the end of the device")
        }
        var buf = try overlay.readBytes(at: f.byteOffset, count: f.byteCount)
        // v5: replay only onto metadata older than this transaction (xlog_recover_get_buf_lsn).
        if geometry.isV5, let onDisk = bufferLSN(buf, flags: f.flags), onDisk != 0, onDisk != UInt64.max, onDisk >= lsn {
            report.buffersSkippedAsNewer += 1
            return
        }
        if f.flags & XFSBufLogFormat.inodeBuffer != 0 {
            try replayInodeBuffer(item, f, &buf)
            report.inodeBuffersReplayed += 1
        } else if f.flags & XFSBufLogFormat.dquotBuffers != 0 {
            // xlog_recover_do_dquot_buffer: nothing to do while quota is off.
            report.dquotBuffersSkipped += 1
            return
        } else {
            try replayRegularBuffer(item, f, &buf)
            report.buffersReplayed += 1
        }
        try overlay.writeBytes(buf, at: f.byteOffset)
        pending[key] = lsn
    }

    /// xlog_recover_do_reg_buffer: copy each logged region over its dirty chunks. A run of
    /// dirty chunks may come in more than one region (split at a page boundary), so each copy
    /// takes no more than its region holds.
    func replayRegularBuffer(_ item: XFSLogItem, _ f: XFSBufLogFormat, _ buf: inout [UInt8]) throws {
        var bit = 0
        var region = 1
        let bits = f.dirtyMap.count * 32
        while let start = nextBit(f.dirtyMap, from: bit, bits: bits) {
            var count = contiguousBits(f.dirtyMap, from: start, bits: bits)
            guard region < item.regions.count else {
                throw XFSLogReplayError("buffer at daddr 0x\(String(f.daddr, radix: 16)) has more dirty chunks than logged regions")
            }
            let data = item.regions[region]
            guard !data.isEmpty, data.count % XFSBufLogFormat.chunk == 0 else {
                throw XFSLogReplayError("buffer region of \(data.count) bytes is not whole 128-byte chunks")
            }
            count = min(count, data.count / XFSBufLogFormat.chunk)
            let at = start * XFSBufLogFormat.chunk, length = count * XFSBufLogFormat.chunk
            guard at + length <= buf.count else {
                throw XFSLogReplayError("dirty chunks \(start)+\(count) lie past the \(buf.count)-byte buffer at daddr 0x\(String(f.daddr, radix: 16))")
            }
            buf.replaceSubrange(at ..< at + length, with: data[0 ..< length])
            region += 1
            bit = start + count
        }
    }

    /// xlog_recover_do_inode_buffer: of an inode cluster buffer logged for the unlinked lists,
    /// only the di_next_unlinked fields are replayed, and the CRC of each inode changed.
    func replayInodeBuffer(_ item: XFSLogItem, _ f: XFSBufLogFormat, _ buf: inout [UInt8]) throws {
        let inodeSize = Int(geometry.inodeSize)
        guard inodeSize >= 256 else { throw XFSLogReplayError("inode size \(inodeSize)") }
        let bits = f.dirtyMap.count * 32
        var bit = 0, nbits = 0, regionIndex = 0
        var regionOffset = 0, regionBytes = 0
        for i in 0 ..< buf.count / inodeSize {
            let nextOffset = i * inodeSize + 96   // offsetof(struct xfs_dinode, di_next_unlinked)
            while nextOffset >= regionOffset + regionBytes {
                guard let b = nextBit(f.dirtyMap, from: bit + nbits, bits: bits) else { return }
                bit = b
                nbits = contiguousBits(f.dirtyMap, from: bit, bits: bits)
                regionOffset = bit * XFSBufLogFormat.chunk
                regionBytes = nbits * XFSBufLogFormat.chunk
                regionIndex += 1
            }
            if nextOffset < regionOffset { continue }
            guard regionIndex < item.regions.count else {
                throw XFSLogReplayError("inode buffer at daddr 0x\(String(f.daddr, radix: 16)) has more dirty chunks than logged regions")
            }
            let data = item.regions[regionIndex]
            let within = nextOffset - regionOffset
            guard within + 4 <= data.count, regionOffset + regionBytes <= buf.count else {
                throw XFSLogReplayError("inode buffer region at daddr 0x\(String(f.daddr, radix: 16)) is shorter than its dirty chunks")
            }
            let logged = Array(data[within ..< within + 4])
            guard logged != [0, 0, 0, 0] else {
                throw XFSLogReplayError("inode buffer at daddr 0x\(String(f.daddr, radix: 16)) logs a zero di_next_unlinked")
            }
            buf.replaceSubrange(nextOffset ..< nextOffset + 4, with: logged)
            if geometry.isV5 {
                XFSLogReplay.stampInodeCRC(&buf, at: i * inodeSize, size: inodeSize)
            }
        }
    }

    func nextBit(_ map: [UInt32], from: Int, bits: Int) -> Int? {
        var bit = from
        while bit < bits {
            if map[bit / 32] & (1 << UInt32(bit % 32)) != 0 { return bit }
            bit += 1
        }
        return nil
    }

    func contiguousBits(_ map: [UInt32], from: Int, bits: Int) -> Int {
        var bit = from
        while bit < bits, map[bit / 32] & (1 << UInt32(bit % 32)) != 0 { bit += 1 }
        return bit - from
    }

    /// The LSN of the metadata in `buf` when it is v5 metadata of this filesystem, or nil to
    /// replay at once (xlog_recover_get_buf_lsn: realtime bitmap/summary, remote attribute
    /// values, inode and dquot buffers, unknown contents, another filesystem's UUID).
    func bufferLSN(_ buf: [UInt8], flags: UInt16) -> UInt64? {
        guard buf.count >= 512 else { return nil }
        let blft = flags >> 11   // XFS_BLFT_SHIFT
        if blft == 6 || blft == 7 { return nil }   // XFS_BLFT_RTBITMAP_BUF, XFS_BLFT_RTSUMMARY_BUF
        let magic32 = XFSLogReader.be32(buf, 0)
        func at(_ lsn: Int, _ uuid: Int) -> UInt64? {
            guard Array(buf[uuid ..< uuid + 16]) == geometry.metaUUID else { return nil }
            return UInt64(XFSLogReader.be32(buf, lsn)) << 32 | UInt64(XFSLogReader.be32(buf, lsn + 4))
        }
        switch magic32 {
        case 0x4142_3342, 0x4142_3343, 0x4142_5442, 0x4142_5443,   // AB3B AB3C ABTB ABTC
             0x524D_4233, 0x5233_4643,                             // RMB3 R3FC
             0x4649_4233, 0x4649_4254, 0x4941_4233, 0x4941_4254:   // FIB3 FIBT IAB3 IABT
            return at(24, 32)                                      // xfs_btree_block short form
        case 0x424D_4133, 0x424D_4150:                             // BMA3 BMAP
            return at(32, 40)                                      // long form
        case 0x5841_4746: return at(208, 64)                       // XAGF
        case 0x5841_464C: return at(24, 8)                         // XAFL
        case 0x5841_4749: return at(320, 296)                      // XAGI
        case 0x5853_4C4D: return at(48, 16)                        // XSLM
        case 0x5844_4233, 0x5844_4433, 0x5844_4633: return at(16, 24)   // XDB3 XDD3 XDF3
        case 0x5841_524D: return nil                               // XARM: written unlogged
        case 0x5846_5342: return at(240, layout.hasMetaUUID ? 248 : 32) // XFSB
        default: break
        }
        let magicDA = UInt16(buf[8]) << 8 | UInt16(buf[9])
        switch magicDA {
        case 0x3DF1, 0x3DFF, 0x3BEE, 0x3EBE: return at(24, 32)     // xfs_da3_blkinfo
        default: return nil
        }
    }

    /// What the write verifiers do to v5 metadata when the replayed buffer is written: the LSN
    /// of the transaction goes into the header, then the CRC is recomputed. Returns false for
    /// contents that have neither (inode, dquot and remote attribute buffers, data).
    static func stampLSNAndCRC(_ buf: inout [UInt8], lsn: UInt64) -> Bool {
        guard buf.count >= 512 else { return false }
        let magic32 = XFSLogReader.be32(buf, 0)
        let fields: (lsn: Int, crc: Int)?
        switch magic32 {
        case 0x4142_3342, 0x4142_3343, 0x524D_4233, 0x5233_4643, 0x4649_4233, 0x4941_4233: fields = (24, 52)
        case 0x424D_4133: fields = (32, 64)
        case 0x5841_4746: fields = (208, 216)
        case 0x5841_464C: fields = (24, 32)
        case 0x5841_4749: fields = (320, 312)
        case 0x5853_4C4D: fields = (48, 12)
        case 0x5844_4233, 0x5844_4433, 0x5844_4633: fields = (16, 4)
        case 0x5846_5342: fields = (240, 224)
        default:
            let magicDA = UInt16(buf[8]) << 8 | UInt16(buf[9])
            fields = [0x3DF1, 0x3DFF, 0x3BEE, 0x3EBE].contains(magicDA) ? (24, 12) : nil
        }
        guard let fields else { return false }
        for i in 0 ..< 8 { buf[fields.lsn + i] = UInt8(truncatingIfNeeded: lsn >> (56 - 8 * UInt64(i))) }
        stampCRC(&buf, range: 0 ..< buf.count, crcOffset: fields.crc)
        return true
    }

    /// xfs_dinode_calc_crc for the inode at `offset`.
    static func stampInodeCRC(_ buf: inout [UInt8], at offset: Int, size: Int) {
        guard offset + size <= buf.count, buf[offset + 4] >= 3 else { return }
        stampCRC(&buf, range: offset ..< offset + size, crcOffset: offset + 100)
    }

    static func stampCRC(_ buf: inout [UInt8], range: Range<Int>, crcOffset: Int) {
        let crc = XFSChecksum.compute(Array(buf[range]), crcOffset: crcOffset - range.lowerBound)
        for i in 0 ..< 4 { buf[crcOffset + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }
}
