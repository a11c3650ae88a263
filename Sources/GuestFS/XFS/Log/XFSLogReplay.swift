import GuestFSBlock
import GuestFSFilesystem

/// Replays committed transactions into a MemoryOverlayDevice, as xfs_log_recover.c
/// xlog_recover_commit_trans does in its two passes: pass 1 records cancelled buffers
/// (xlog_recover_buf_commit_pass1), pass 2 replays every item in the order
/// xlog_recover_reorder_trans gives (buffers, other items, inode-unlink buffers, cancellations).
final class XFSLogReplay {
    let overlay: MemoryOverlayDevice
    let geometry: XFSGeometry
    let layout: XFSLogLayout
    let order: XFSLogRecordHeader.ItemByteOrder
    var report: XFSLogReport
    let intents = XFSLogIntents()

    /// Cancelled buffers by (daddr, BBs), with how many cancel records remain
    /// (xfs_log_recover.c struct xfs_buf_cancel, bc_refcount).
    struct BufferKey: Hashable { var daddr: UInt64; var length: UInt16 }
    var cancelled: [BufferKey: Int] = [:]

    /// Buffers replayed under the current LSN whose LSN field and CRC are stamped when the LSN
    /// changes: the kernel writes its delayed-write list then (xfs_buf_delwri_submit in
    /// xlog_recover_process_ophdr), and its write verifiers stamp the LSN and CRC, so a second
    /// item for the same buffer under the same LSN still sees the old on-disk LSN.
    var pending: [BufferKey: UInt64] = [:]
    var pendingLSN: UInt64 = 0

    init(overlay: MemoryOverlayDevice, geometry: XFSGeometry, layout: XFSLogLayout,
         order: XFSLogRecordHeader.ItemByteOrder, report: XFSLogReport) {
        self.overlay = overlay
        self.geometry = geometry
        self.layout = layout
        self.order = order
        self.report = report
    }

    func bytes(_ item: XFSLogItem, _ region: Int) -> XFSLogItemBytes {
        XFSLogItemBytes(bytes: item.regions[region], order: order,
                        what: "\(XFSLogItemType.name(item.type)) item region \(region)")
    }

    // MARK: Pass 1

    func pass1(_ trans: XFSLogTransaction) throws {
        for item in trans.items where item.type == XFSLogItemType.buffer {
            let f = try XFSBufLogFormat(bytes(item, 0))
            if f.flags & XFSBufLogFormat.cancel != 0 {
                cancelled[BufferKey(daddr: f.daddr, length: f.lengthBBs), default: 0] += 1
            }
        }
    }

    func isCancelled(daddr: UInt64, length: UInt16) -> Bool {
        cancelled[BufferKey(daddr: daddr, length: length)] != nil
    }

    // MARK: Pass 2

    func pass2(_ trans: XFSLogTransaction) throws {
        // The commit of a new LSN writes what the previous LSN replayed.
        if trans.lsn != pendingLSN {
            try flushPending()
            pendingLSN = trans.lsn
        }
        report.transactions += 1
        // xlog_recover_reorder_trans.
        var buffers: [XFSLogItem] = [], others: [XFSLogItem] = [], inodeBuffers: [XFSLogItem] = [], cancels: [XFSLogItem] = []
        for item in trans.items {
            switch item.type {
            case XFSLogItemType.buffer:
                let f = try XFSBufLogFormat(bytes(item, 0))
                if f.flags & XFSBufLogFormat.cancel != 0 { cancels.append(item) }
                else if f.flags & XFSBufLogFormat.inodeBuffer != 0 { inodeBuffers.append(item) }
                else { buffers.append(item) }
            case XFSLogItemType.icreate:
                buffers.append(item)
            default:
                others.append(item)
            }
        }
        for item in buffers + others + inodeBuffers + cancels {
            try replay(item, lsn: trans.lsn)
        }
    }

    private func replay(_ item: XFSLogItem, lsn: UInt64) throws {
        switch item.type {
        case XFSLogItemType.buffer: try replayBuffer(item, lsn: lsn)
        case XFSLogItemType.inode: try replayInode(item, lsn: lsn)
        case XFSLogItemType.icreate: try replayInodeCreate(item)
        case XFSLogItemType.dquot, XFSLogItemType.quotaOff:
            // Quota is off for a read-only open: the kernel's xlog_recover_dquot_commit_pass2
            // returns at once when m_qflags is 0 (and quotacheck rebuilds the counts anyway).
            report.dquotItemsSkipped += 1
        default:
            try intents.add(item, order: order, lsn: lsn)
        }
    }

    /// Stamps the LSN and CRC of every buffer replayed under `pendingLSN`.
    func flushPending() throws {
        guard geometry.isV5 else { pending.removeAll(); return }
        for (key, _) in pending.sorted(by: { $0.key.daddr < $1.key.daddr }) {
            var buf = try overlay.readBytes(at: key.daddr * 512, count: Int(key.length) * 512)
            if XFSLogReplay.stampLSNAndCRC(&buf, lsn: pendingLSN) {
                try overlay.writeBytes(buf, at: key.daddr * 512)
            }
        }
        pending.removeAll()
    }
}

/// What recovery found and did, for the driver's warning line and for tests.
struct XFSLogReport: Sendable, CustomStringConvertible {
    var head: UInt32 = 0
    var tail: UInt32 = 0
    var headCycle: UInt32 = 0
    var logBlocks: UInt32 = 0
    /// Records walked from tail to head, and whether that walk went round the end of the ring.
    var records = 0
    var wrapped = false
    var transactions = 0
    var buffersReplayed = 0
    var buffersSkippedAsNewer = 0
    var buffersCancelled = 0
    var inodeBuffersReplayed = 0
    var dquotBuffersSkipped = 0
    var inodesReplayed = 0
    var inodesSkippedAsNewer = 0
    var inodesCancelled = 0
    var inodeChunksCreated = 0
    var dquotItemsSkipped = 0
    /// The log block where a torn write (CRC failure at the head) ended the log.
    var tornAt: UInt32?
    /// Intents (EFI, RUI, CUI, BUI, ATTRI, XMI) whose done item is not in the log: the kernel
    /// finishes them after replay (xlog_recover_process_intents); see XFSLogIntents. The BUIs
    /// among them are carried out in the overlay too (`bmapIntentsFinished`; those that cannot
    /// be are named in `notReplayed`).
    var unfinishedIntents: [XFSLogIntent] = []
    /// Intent and done items replay saw, by type ("EFI", "EFD", "BUI", ...).
    var intentItems: [String: Int] = [:]
    /// Unfinished bmap intents (BUI) carried out in the overlay (XFSLogBmapIntents.swift).
    var bmapIntentsFinished = 0
    /// Unfinished BUIs on forks the overlay cannot rewrite (B+tree forks, or a change that
    /// would turn the fork into one): the driver applies them to the extent list it resolves
    /// for that inode (XFSFilesystem+Intents.swift), so reads show them all the same.
    var deferredBmapIntents: [XFSBmapIntent] = []
    /// Things replay saw but did not do, one line each.
    var notReplayed: [String] = []
    var overlayBytes: UInt64 = 0

    var description: String {
        var s = "log head \(head) tail \(tail) (cycle \(headCycle)), \(records) records, \(transactions) transactions; "
        s += "buffers \(buffersReplayed) replayed, \(buffersSkippedAsNewer) newer on disk, \(buffersCancelled) cancelled; "
        s += "inodes \(inodesReplayed) replayed, \(inodesSkippedAsNewer) newer on disk, \(inodesCancelled) cancelled; "
        s += "\(inodeChunksCreated) inode chunks created"
        if let tornAt { s += "; torn write at log block \(tornAt)" }
        if !unfinishedIntents.isEmpty { s += "; \(unfinishedIntents.count) unfinished intents" }
        if bmapIntentsFinished > 0 { s += " (\(bmapIntentsFinished) BUIs carried out)" }
        return s
    }
}
