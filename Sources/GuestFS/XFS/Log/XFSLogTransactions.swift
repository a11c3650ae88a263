import GuestFSBlock
import GuestFSFilesystem

/// Operation headers (xfs_log_format.h `struct xlog_op_header`, big-endian, 12 bytes) and their
/// flags: the stream of regions every record carries.
///
///     0 oh_tid  4 oh_len  8 oh_clientid  9 oh_flags  10 oh_res2
enum XFSLogOp {
    static let headerSize = 12
    static let startTrans: UInt8 = 0x01      // XLOG_START_TRANS
    static let commitTrans: UInt8 = 0x02     // XLOG_COMMIT_TRANS
    static let continueTrans: UInt8 = 0x04   // XLOG_CONTINUE_TRANS
    static let wasContTrans: UInt8 = 0x08    // XLOG_WAS_CONT_TRANS
    static let endTrans: UInt8 = 0x10        // XLOG_END_TRANS
    static let unmountTrans: UInt8 = 0x20    // XLOG_UNMOUNT_TRANS
    static let clientTransaction: UInt8 = 0x69   // XFS_TRANSACTION
    static let clientLog: UInt8 = 0xAA           // XFS_LOG
}

/// One log item of a transaction: its regions (ri_buf), region 0 being the item's format
/// structure whose second 16-bit word (host order) says how many regions the item has.
struct XFSLogItem {
    var regions: [[UInt8]] = []
    var total = 0
    var type: UInt16 = 0
}

/// A committed transaction as recovery replays it (xlog_recover_t): the LSN of the record it
/// started in (r_lsn, the "current LSN" of the LSN ordering checks) and its items in log order.
struct XFSLogTransaction {
    var tid: UInt32
    var lsn: UInt64
    var items: [XFSLogItem] = []
    var headerBytes: [UInt8] = []
    var bytes = 0
}

/// Rebuilds transactions from the op headers of the records, in the way xfs_log_recover.c
/// xlog_recover_process_data, xlog_recover_ophdr_to_trans, xlog_recovery_process_trans,
/// xlog_recover_add_to_trans and xlog_recover_add_to_cont_trans do: a START op opens a
/// transaction, later ops with its tid add regions (a region split across records continues
/// with WAS_CONT), and a COMMIT op hands it to `commit`. Ops of a transaction that never
/// started in the part of the log being replayed are skipped, as the kernel skips them.
struct XFSLogTransactionAssembler {
    /// xfs_log_recover.c XLOG_MAX_REGIONS_IN_ITEM: the most regions one item may have.
    static let maxRegionsPerItem = 64 * 1024 / 128 / 2 + 1
    /// A cap on the bytes of one transaction (a checkpoint is at most a fraction of the log;
    /// this bounds memory for a hostile log).
    static let maxTransactionBytes = 256 << 20

    private var open: [UInt32: XFSLogTransaction] = [:]
    let itemOrder: XFSLogRecordHeader.ItemByteOrder

    init(itemOrder: XFSLogRecordHeader.ItemByteOrder) { self.itemOrder = itemOrder }

    /// Feeds the unpacked data of one record; `commit` gets each transaction that commits in it.
    mutating func add(record: XFSLogRecordHeader, data: [UInt8], damage: (String) -> ImageError,
                      commit: (XFSLogTransaction) throws -> Void) throws {
        let end = Int(record.length)
        var offset = 0
        var ops = record.opCount
        while offset < end, ops > 0 {
            guard end - offset >= XFSLogOp.headerSize else { throw damage("op header at byte \(offset) runs past the record") }
            let tid = XFSLogReader.be32(data, offset)
            let length = Int(XFSLogReader.be32(data, offset + 4))
            let client = data[offset + 8]
            let flags = data[offset + 9]
            offset += XFSLogOp.headerSize
            guard client == XFSLogOp.clientTransaction || client == XFSLogOp.clientLog else {
                throw damage("op at byte \(offset - 12) has client id 0x\(String(client, radix: 16))")
            }
            guard length <= end - offset else { throw damage("op at byte \(offset - 12) of \(length) bytes runs past the record") }
            let region = Array(data[offset ..< offset + length])
            offset += length
            ops -= 1

            guard var trans = open[tid] else {
                // Not a transaction we know: only a START begins one (its op carries no data).
                if flags & XFSLogOp.startTrans != 0 {
                    open[tid] = XFSLogTransaction(tid: tid, lsn: record.lsn)
                }
                continue
            }
            var f = flags & ~XFSLogOp.endTrans
            if f & XFSLogOp.wasContTrans != 0 { f &= ~XFSLogOp.continueTrans }
            switch f {
            case 0, XFSLogOp.continueTrans:
                try addRegion(&trans, region, damage: damage)
                open[tid] = trans
            case XFSLogOp.wasContTrans:
                try continueRegion(&trans, region, damage: damage)
                open[tid] = trans
            case XFSLogOp.commitTrans:
                open[tid] = nil
                if let last = trans.items.last, last.regions.count < last.total {
                    throw damage("transaction 0x\(String(tid, radix: 16)) commits with an item missing \(last.total - last.regions.count) of its regions")
                }
                try commit(trans)
            case XFSLogOp.unmountTrans:
                open[tid] = nil
            default:
                throw damage("op of transaction 0x\(String(tid, radix: 16)) has flags 0x\(String(flags, radix: 16))")
            }
        }
    }

    private func hostU16(_ r: [UInt8], _ o: Int) -> UInt16 {
        itemOrder == .little ? UInt16(r[o]) | UInt16(r[o + 1]) << 8 : UInt16(r[o]) << 8 | UInt16(r[o + 1])
    }

    private func account(_ trans: inout XFSLogTransaction, _ count: Int, damage: (String) -> ImageError) throws {
        trans.bytes += count
        guard trans.bytes <= XFSLogTransactionAssembler.maxTransactionBytes else {
            throw damage("transaction 0x\(String(trans.tid, radix: 16)) is larger than \(XFSLogTransactionAssembler.maxTransactionBytes) bytes")
        }
    }

    /// xlog_recover_add_to_trans: the first region is the transaction header (magic "TRAN"),
    /// then each region opens an item or adds to the last one.
    private func addRegion(_ trans: inout XFSLogTransaction, _ region: [UInt8], damage: (String) -> ImageError) throws {
        guard !region.isEmpty else { return }
        try account(&trans, region.count, damage: damage)
        if trans.items.isEmpty && trans.headerBytes.count < 16 {
            guard trans.headerBytes.isEmpty else {
                throw damage("transaction 0x\(String(trans.tid, radix: 16)) header continues without WAS_CONT")
            }
            let magic: [UInt8] = itemOrder == .little ? [0x4E, 0x41, 0x52, 0x54] : [0x54, 0x52, 0x41, 0x4E]
            guard region.count >= 4, Array(region[0 ..< 4]) == magic else {
                throw damage("transaction 0x\(String(trans.tid, radix: 16)) does not start with a transaction header")
            }
            guard region.count <= 16 else { throw damage("transaction header of \(region.count) bytes") }
            trans.headerBytes = region
            return
        }
        if trans.items.isEmpty || trans.items[trans.items.count - 1].regions.count == trans.items[trans.items.count - 1].total {
            trans.items.append(XFSLogItem())
        }
        var item = trans.items.removeLast()
        if item.regions.isEmpty {
            guard region.count >= 4 else { throw damage("log item format of \(region.count) bytes") }
            let size = Int(hostU16(region, 2))
            guard size > 0, size <= XFSLogTransactionAssembler.maxRegionsPerItem else {
                throw damage("log item of type 0x\(String(hostU16(region, 0), radix: 16)) claims \(size) regions")
            }
            item.total = size
            item.type = hostU16(region, 0)
        }
        item.regions.append(region)
        trans.items.append(item)
    }

    /// xlog_recover_add_to_cont_trans: the rest of a region split across records.
    private func continueRegion(_ trans: inout XFSLogTransaction, _ region: [UInt8], damage: (String) -> ImageError) throws {
        try account(&trans, region.count, damage: damage)
        if trans.items.isEmpty {
            guard trans.headerBytes.count + region.count <= 16 else { throw damage("transaction header continues past 16 bytes") }
            trans.headerBytes += region
            return
        }
        let i = trans.items.count - 1
        guard !trans.items[i].regions.isEmpty else { throw damage("continued region without a region to continue") }
        trans.items[i].regions[trans.items[i].regions.count - 1] += region
    }
}
