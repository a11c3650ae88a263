import GuestFSBlock
import GuestFSFilesystem

/// Where the internal log lives and how it is cut up, from the superblock's log fields
/// (xfs_format.h `struct xfs_dsb`: sb_logstart, sb_logblocks, sb_versionnum's LOGV2 bit,
/// sb_logsectlog/sb_logsectsize, sb_logsunit; "XFS Algorithms & Data Structures" §13 "Journaling
/// Log"). The log is a ring of 512-byte basic blocks ("BBs", xfs_fs.h BBSIZE); every position in
/// it is a BB number in `0 ..< blocks`.
struct XFSLogLayout: Sendable {
    /// Byte offset on the data device of log BB 0.
    var startByte: UInt64
    /// The ring's length in BBs (sb_logblocks fs blocks).
    var blocks: UInt32
    /// Version 2 log records (XFS_SB_VERSION_LOGV2BIT; always on v5): extended headers, h_size.
    var isV2: Bool
    /// sb_logsunit in bytes (v2 logs only; 0 or 1 means none).
    var stripeUnit: UInt32
    /// Raw superblock fields the replay needs beyond XFSGeometry.
    var inodeAlignment: UInt32   // sb_inoalignmt, in fs blocks
    var hasMetaUUID: Bool

    /// xfs_log_format.h XLOG_MAX_RECORD_BSIZE: the largest v2 iclog.
    static let maxRecordBytes: UInt32 = 256 * 1024
    /// xfs_log_format.h XLOG_HEADER_CYCLE_SIZE: one header's h_cycle_data covers 32 KiB of data.
    static let headerCycleBytes: UInt32 = 32 * 1024
    /// XFS_MAX_LOG_BYTES (xfs_log_format.h): 2 GiB.
    static let maxLogBytes: UInt64 = 2 << 30
    /// xfs_log_priv.h XLOG_MAX_ICLOGS: records that can be in flight at once (the head search
    /// window and the torn-write check look back this many).
    static let maxInFlightRecords = 8

    /// Parses the log fields of `superblock` (the raw first sector) and checks the log lies
    /// inside a device of `deviceSize` bytes. An external log (sb_logstart 0) is refused.
    static func parse(superblock: [UInt8], geometry: XFSGeometry, deviceSize: UInt64) throws -> XFSLogLayout {
        let sb = XFSBytes(superblock, structure: "superblock", deviceOffset: 0)
        guard try sb.u32(0) == 0x5846_5342 else { throw sb.damaged("bad superblock magic") }
        let logStart = try sb.u64(48)          // sb_logstart (fsblock)
        let logBlocks = try sb.u32(96)         // sb_logblocks (fs blocks)
        let versionNum = try sb.u16(100)       // sb_versionnum
        let inoAlign = try sb.u32(180)         // sb_inoalignmt
        let logSunit = try sb.u32(196)         // sb_logsunit
        let incompat = geometry.isV5 ? try sb.u32(216) : 0
        guard logStart != 0 else {
            throw sb.damaged("the log is external (sb_logstart 0); only internal logs can be recovered")
        }
        guard let start = geometry.byteOffset(fsblock: logStart) else {
            throw sb.damaged("sb_logstart \(logStart) is not a block of the filesystem")
        }
        guard geometry.blockSize >= 512, geometry.blockSize <= 65536, geometry.blockSize & (geometry.blockSize - 1) == 0 else {
            throw sb.damaged("block size \(geometry.blockSize) is not a power of two from 512 to 65536")
        }
        guard geometry.inodeSize >= 256, geometry.inodeSize <= 2048, geometry.agBlockLog < 32, geometry.inodesPerBlockLog < 8 else {
            throw sb.damaged("inode size \(geometry.inodeSize) or AG geometry out of range")
        }
        guard logBlocks > 0 else { throw sb.damaged("sb_logblocks is 0") }
        let bytes = UInt64(logBlocks) * UInt64(geometry.blockSize)
        guard bytes <= maxLogBytes else { throw sb.damaged("log of \(bytes) bytes is larger than XFS allows (2 GiB)") }
        guard bytes >= 64 * 1024 else { throw sb.damaged("log of \(bytes) bytes is too small to hold a record") }
        guard start <= deviceSize, bytes <= deviceSize - start else {
            throw sb.damaged("the log (\(bytes) bytes at 0x\(String(start, radix: 16))) runs past the end of the device")
        }
        let isV2 = geometry.isV5 || versionNum & 0x0400 != 0
        return XFSLogLayout(startByte: start, blocks: UInt32(bytes / 512), isV2: isV2,
                            stripeUnit: isV2 ? logSunit : 0, inodeAlignment: inoAlign,
                            hasMetaUUID: incompat & 0x4 != 0)
    }

    /// BB `block` taken round the ring.
    func wrap(_ block: UInt64) -> UInt32 { UInt32(block % UInt64(blocks)) }

    /// The device offset of log BB `block` (< blocks).
    func byteOffset(_ block: UInt32) -> UInt64 { startByte + UInt64(block) * 512 }
}

/// Reads BBs of the log ring from the device, wrapping at its end (the reads xlog_bread does).
struct XFSLogReader {
    let device: any BlockDevice
    let layout: XFSLogLayout

    /// `count` BBs starting at `block`, continuing at BB 0 past the end of the ring.
    func read(_ block: UInt32, count: Int) throws -> [UInt8] {
        // Counts and positions come from record headers: a bad one is damage, not a trap.
        guard count >= 0, UInt64(count) <= UInt64(layout.blocks), block < layout.blocks else {
            throw ImageError(offset: layout.startByte, structure: "XFS log",
                             reason: "read of \(count) blocks at log block \(block) outside the \(layout.blocks)-block log",
                             errno: .ioError)
        }
        let first = min(count, Int(layout.blocks - block))
        var bytes = try device.readBytes(at: layout.byteOffset(block), count: first * 512)
        if first < count { bytes += try device.readBytes(at: layout.byteOffset(0), count: (count - first) * 512) }
        return bytes
    }

    /// The cycle number of BB `block` (xlog_get_cycle): a record header keeps it in h_cycle,
    /// any other written BB in its first word (the cycle stamp xlog_pack_data puts there).
    func cycle(_ block: UInt32) throws -> UInt32 {
        let bb = try read(block, count: 1)
        return XFSLogReader.cycle(of: bb, at: 0)
    }

    static func cycle(of bytes: [UInt8], at offset: Int) -> UInt32 {
        let word0 = be32(bytes, offset)
        return word0 == XFSLogRecordHeader.magic ? be32(bytes, offset + 4) : word0
    }

    static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
}
