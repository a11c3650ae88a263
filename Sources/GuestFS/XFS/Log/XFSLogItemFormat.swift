import GuestFSBlock
import GuestFSFilesystem

/// The log item format structures (xfs_log_format.h), which the logging host writes in its own
/// byte order (little-endian from x86; the record's h_fmt says which), unlike the big-endian
/// on-disk metadata they describe. Every access is checked against the region.
struct XFSLogItemBytes {
    let bytes: [UInt8]
    let order: XFSLogRecordHeader.ItemByteOrder
    let what: String

    var count: Int { bytes.count }

    func u8(_ o: Int) throws -> UInt8 { UInt8(truncatingIfNeeded: try uint(o, 1)) }
    func u16(_ o: Int) throws -> UInt16 { UInt16(truncatingIfNeeded: try uint(o, 2)) }
    func u32(_ o: Int) throws -> UInt32 { UInt32(truncatingIfNeeded: try uint(o, 4)) }
    func u64(_ o: Int) throws -> UInt64 { try uint(o, 8) }

    private func uint(_ o: Int, _ width: Int) throws -> UInt64 {
        guard o >= 0, o <= bytes.count, width <= bytes.count - o else {
            throw XFSLogReplayError("\(what): field at byte \(o) (+\(width)) lies outside its \(bytes.count)-byte region")
        }
        var v: UInt64 = 0
        if order == .little {
            for i in (0 ..< width).reversed() { v = v << 8 | UInt64(bytes[o + i]) }
        } else {
            for i in 0 ..< width { v = v << 8 | UInt64(bytes[o + i]) }
        }
        return v
    }
}

/// Damage found while replaying one item; the recovery driver turns it into an ImageError that
/// names the transaction's log position.
struct XFSLogReplayError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Log item types (xfs_log_format.h XFS_LI_*).
enum XFSLogItemType {
    static let efi: UInt16 = 0x1236
    static let efd: UInt16 = 0x1237
    static let iunlink: UInt16 = 0x1238
    static let inode: UInt16 = 0x123b
    static let buffer: UInt16 = 0x123c
    static let dquot: UInt16 = 0x123d
    static let quotaOff: UInt16 = 0x123e
    static let icreate: UInt16 = 0x123f
    static let rui: UInt16 = 0x1240
    static let rud: UInt16 = 0x1241
    static let cui: UInt16 = 0x1242
    static let cud: UInt16 = 0x1243
    static let bui: UInt16 = 0x1244
    static let bud: UInt16 = 0x1245
    static let attri: UInt16 = 0x1246
    static let attrd: UInt16 = 0x1247
    static let xmi: UInt16 = 0x1248
    static let xmd: UInt16 = 0x1249
    static let efiRT: UInt16 = 0x124a
    static let efdRT: UInt16 = 0x124b
    static let ruiRT: UInt16 = 0x124c
    static let rudRT: UInt16 = 0x124d
    static let cuiRT: UInt16 = 0x124e
    static let cudRT: UInt16 = 0x124f

    static func name(_ t: UInt16) -> String {
        switch t {
        case efi: "EFI"; case efd: "EFD"; case inode: "inode"; case buffer: "buffer"; case dquot: "dquot"
        case quotaOff: "quotaoff"; case icreate: "icreate"; case rui: "RUI"; case rud: "RUD"; case cui: "CUI"
        case cud: "CUD"; case bui: "BUI"; case bud: "BUD"; case attri: "ATTRI"; case attrd: "ATTRD"
        case xmi: "XMI"; case xmd: "XMD"; case efiRT: "EFI(rt)"; case efdRT: "EFD(rt)"; case ruiRT: "RUI(rt)"
        case rudRT: "RUD(rt)"; case cuiRT: "CUI(rt)"; case cudRT: "CUD(rt)"
        default: "0x" + String(t, radix: 16)
        }
    }
}

/// xfs_log_format.h `struct xfs_buf_log_format`: a logged buffer, its 128-byte chunks that are
/// dirty (blf_data_map), and what kind of buffer it is.
///
///     0 blf_type  2 blf_size  4 blf_flags  6 blf_len (BBs)  8 blf_blkno (daddr)
///     16 blf_map_size (words)  20 blf_data_map[]
struct XFSBufLogFormat {
    static let inodeBuffer: UInt16 = 1 << 0     // XFS_BLF_INODE_BUF
    static let cancel: UInt16 = 1 << 1          // XFS_BLF_CANCEL
    static let dquotBuffers: UInt16 = 0x1C      // XFS_BLF_UDQUOT_BUF | PDQUOT | GDQUOT
    static let chunk = 128                      // XFS_BLF_CHUNK
    static let maxMapWords = 64 * 1024 / 128 / 32 + 1   // XFS_BLF_DATAMAP_SIZE

    var flags: UInt16
    var lengthBBs: UInt16
    var daddr: UInt64
    var dirtyMap: [UInt32]

    init(_ r: XFSLogItemBytes) throws {
        flags = try r.u16(4)
        lengthBBs = try r.u16(6)
        daddr = try r.u64(8)
        let words = Int(try r.u32(16))
        guard words <= XFSBufLogFormat.maxMapWords else { throw XFSLogReplayError("buffer log format with \(words) map words") }
        dirtyMap = try (0 ..< words).map { try r.u32(20 + 4 * $0) }
        guard lengthBBs > 0, lengthBBs <= 128 else {
            throw XFSLogReplayError("logged buffer at daddr 0x\(String(daddr, radix: 16)) is \(lengthBBs) BBs long")
        }
        guard daddr < 1 << 54 else { throw XFSLogReplayError("logged buffer at daddr 0x\(String(daddr, radix: 16))") }
    }

    var byteOffset: UInt64 { daddr * 512 }
    var byteCount: Int { Int(lengthBBs) * 512 }

    /// Runs of dirty chunks as (first chunk, chunk count), in order (xfs_next_bit /
    /// xfs_contig_bits over the map).
    var dirtyRuns: [(first: Int, count: Int)] {
        var runs: [(Int, Int)] = []
        let bits = dirtyMap.count * 32
        var bit = 0
        while bit < bits {
            if dirtyMap[bit / 32] & (1 << UInt32(bit % 32)) == 0 { bit += 1; continue }
            let start = bit
            while bit < bits, dirtyMap[bit / 32] & (1 << UInt32(bit % 32)) != 0 { bit += 1 }
            runs.append((start, bit - start))
        }
        return runs
    }
}
