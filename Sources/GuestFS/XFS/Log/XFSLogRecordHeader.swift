import GuestFSBlock
import GuestFSFilesystem

/// One log record's header (xfs_log_format.h `struct xlog_rec_header`, big-endian) and, for v2
/// records larger than 32 KiB, the extended headers after it (`struct xlog_rec_ext_header`),
/// which hold the rest of the saved cycle words ("XFS Algorithms & Data Structures" §13.3
/// "Log Records").
///
///     0 h_magicno  4 h_cycle  8 h_version  12 h_len  16 h_lsn  24 h_tail_lsn  32 h_crc (LE)
///     36 h_prev_block  40 h_num_logops  44 h_cycle_data[64]  300 h_fmt  304 h_fs_uuid
///     320 h_size
struct XFSLogRecordHeader {
    static let magic: UInt32 = 0xFEED_BABE   // XLOG_HEADER_MAGIC_NUM
    /// The byte order of the log items' payloads (h_fmt: XLOG_FMT_LINUX_LE 1, XLOG_FMT_LINUX_BE 2,
    /// XLOG_FMT_IRIX_BE 3).
    enum ItemByteOrder { case little, big }

    var block: UInt32          // where the header sits in the ring
    var cycle: UInt32
    var version: UInt32
    var length: UInt32         // h_len: bytes of data after the header blocks
    var lsn: UInt64
    var tailLSN: UInt64
    var crc: UInt32
    var opCount: UInt32
    var byteOrder: ItemByteOrder
    var uuid: [UInt8]
    var iclogSize: UInt32
    /// How many BBs the header takes (xlog_logrec_hblks): 1, or one per 32 KiB of h_size on v2.
    var headerBlocks: Int
    /// The first BB (512 bytes), kept for the CRC and the saved cycle words.
    var raw: [UInt8]

    var dataBlocks: Int { Int((UInt64(length) + 511) / 512) }
    var totalBlocks: Int { headerBlocks + dataBlocks }

    /// Decodes the header in `bb` (one BB read at ring position `block`), checking what
    /// xlog_valid_rec_header checks. `logBlocks` bounds h_len.
    init(_ bb: [UInt8], block: UInt32, layout: XFSLogLayout, structureOffset: UInt64) throws {
        let b = XFSBytes(bb, structure: "log record header at log block \(block)", deviceOffset: structureOffset)
        guard try b.u32(0) == XFSLogRecordHeader.magic else { throw b.damaged("bad log record magic") }
        self.block = block
        cycle = try b.u32(4)
        version = try b.u32(8)
        length = try b.u32(12)
        lsn = try b.u64(16)
        tailLSN = try b.u64(24)
        crc = UInt32(bb[32]) | UInt32(bb[33]) << 8 | UInt32(bb[34]) << 16 | UInt32(bb[35]) << 24
        opCount = try b.u32(40)
        let fmt = try b.u32(300)
        uuid = try b.slice(304, 16)
        iclogSize = try b.u32(320)
        raw = bb
        guard version == 1 || version == 2 else { throw b.damaged("log record version \(version) is not 1 or 2") }
        guard version == 1 || layout.isV2 else { throw b.damaged("v2 log record in a v1 log") }
        switch fmt {
        case 1: byteOrder = .little
        case 2, 3: byteOrder = .big
        default: throw b.damaged("log record format \(fmt) is not Linux little- or big-endian")
        }
        guard cycle != 0, UInt64(lsn >> 32) == UInt64(cycle) else {
            throw b.damaged("log record cycle \(cycle) disagrees with its LSN \(XFSLogRecordHeader.describe(lsn))")
        }
        // h_len is at most one iclog; mkfs writes records sized by the log stripe unit with
        // h_size 32 KiB (the kernel's xlog_do_recovery_pass allows h_len up to the stripe unit
        // for such one-op records).
        let sizeCap = max(XFSLogLayout.maxRecordBytes, layout.stripeUnit)
        guard length > 0, length <= sizeCap, UInt64(length) < UInt64(layout.blocks) * 512 else {
            throw b.damaged("log record length \(length) is out of range")
        }
        if version == 2, iclogSize > XFSLogRecordHeader.headerCycleBytes {
            guard iclogSize <= XFSLogLayout.maxRecordBytes else {
                throw b.damaged("log record h_size \(iclogSize) is larger than an iclog can be")
            }
            headerBlocks = Int((iclogSize + XFSLogRecordHeader.headerCycleBytes - 1) / XFSLogRecordHeader.headerCycleBytes)
        } else {
            headerBlocks = 1
        }
        // Each header block holds 64 saved cycle words: the data cannot need more.
        guard dataBlocks <= headerBlocks * 64 else {
            throw b.damaged("log record of \(length) bytes needs more cycle words than its \(headerBlocks) header blocks hold")
        }
    }

    static let headerCycleBytes = XFSLogLayout.headerCycleBytes

    /// The CRC the record should carry (xlog_cksum): CRC32C over the header with h_crc zeroed,
    /// the extended headers' `xlog_rec_ext_header` parts, then the data as written (cycle
    /// stamps in place). The header part is sizeof(struct xlog_rec_header): 328 bytes on 64-bit
    /// hosts, 324 on i386 (the kernel accepts either since "xfs: fix log CRC mismatches between
    /// i386 and other architectures"), so both lengths are tried.
    func crcMatches(extendedHeaders: [UInt8], data: [UInt8]) -> Bool {
        [328, 324].contains { computeCRC(extendedHeaders: extendedHeaders, data: data, headerLength: $0) == crc }
    }

    func computeCRC(extendedHeaders: [UInt8], data: [UInt8], headerLength: Int = 328) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        var head = Array(raw[0 ..< headerLength])
        head[32] = 0; head[33] = 0; head[34] = 0; head[35] = 0
        c = head.withUnsafeBytes { XFSChecksum.update(c, $0) }
        var offset = 0
        while offset + 512 <= extendedHeaders.count {
            c = extendedHeaders.withUnsafeBytes { XFSChecksum.update(c, UnsafeRawBufferPointer(rebasing: $0[offset ..< offset + 260])) }
            offset += 512
        }
        c = data.withUnsafeBytes { XFSChecksum.update(c, UnsafeRawBufferPointer(rebasing: $0[0 ..< Int(length)])) }
        return ~c
    }

    /// Puts back the first word of every data BB, which xlog_pack_data replaced by the cycle
    /// number and saved in h_cycle_data (BBs 0..<64) or the extended headers' xh_cycle_data
    /// (xlog_unpack_data). `data` holds `dataBlocks` BBs.
    func unpack(_ data: inout [UInt8], extendedHeaders: [UInt8]) {
        for i in 0 ..< dataBlocks {
            let saved: ArraySlice<UInt8>
            if i < 64 {
                saved = raw[44 + i * 4 ..< 48 + i * 4]
            } else {
                let j = i / 64, k = i % 64
                let base = (j - 1) * 512 + 4 + k * 4
                saved = extendedHeaders[base ..< base + 4]
            }
            data.replaceSubrange(i * 512 ..< i * 512 + 4, with: saved)
        }
    }

    /// "cycle/block" as xfs_logprint prints an LSN.
    static func describe(_ lsn: UInt64) -> String { "\(lsn >> 32)/\(lsn & 0xFFFF_FFFF)" }
}
