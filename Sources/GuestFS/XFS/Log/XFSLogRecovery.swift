import GuestFSBlock
import GuestFSFilesystem

/// XFS dirty-log recovery into memory: what the kernel's xfs_log_recover.c does at mount when
/// the log is dirty (xlog_find_tail, then xlog_do_recover's two passes from tail to head), with
/// every write going to a MemoryOverlayDevice so the image keeps every byte ("XFS Algorithms &
/// Data Structures" §13 "Journaling Log"; xfs_log_format.h).
///
/// After replay the unfinished bmap intents (BUI) are carried out in the overlay, so files a
/// crash caught in a reflink remap show the extents the kernel's recovery gives them
/// (XFSLogBmapIntents.swift). Not done (the kernel does these as the first writes of the mounted
/// filesystem, and none changes what the tree shows): the other unfinished intents (reported in
/// `XFSLogReport.unfinishedIntents`: EFI, whose extents the summary counters count as free
/// already; CUI and RUI, which change only the refcount and rmap B+trees; ATTRI and XMI), freeing the inodes left on the AGI unlinked lists
/// (unreachable, nlink 0), and writing the recomputed summary counters (see
/// `summaryCounters(device:geometry:)`).
enum XFSLogRecovery {
    /// The most memory the replayed metadata may take.
    static let maxOverlayBytes: UInt64 = 256 << 20

    /// nil when the log is clean (head == tail, last record an unmount record); otherwise an
    /// overlay over `device` holding the recovered metadata. Throws ImageError naming the log
    /// block for damage that makes recovery impossible.
    static func recover(device: any BlockDevice, superblock: [UInt8], geometry: XFSGeometry) throws
        -> (overlay: MemoryOverlayDevice, report: XFSLogReport)? {
        let layout = try XFSLogLayout.parse(superblock: superblock, geometry: geometry, deviceSize: device.size)
        let reader = XFSLogReader(device: device, layout: layout)
        guard let ends = try reader.findEnds(), !ends.clean else { return nil }
        var report = XFSLogReport()
        report.head = ends.head
        report.tail = ends.tail
        report.headCycle = ends.headCycle
        report.logBlocks = layout.blocks
        report.tornAt = ends.tornAt
        let fsUUID = Array(superblock[32 ..< 48])

        let overlay = MemoryOverlayDevice(base: device, chunkSize: Int(geometry.blockSize), maxBytes: maxOverlayBytes)
        var replay: XFSLogReplay? = nil
        for pass in 1 ... 2 {
            let walk = try walkRecords(reader, ends, fsUUID: fsUUID, isV5: geometry.isV5) { record, trans in
                if replay == nil {
                    replay = XFSLogReplay(overlay: overlay, geometry: geometry, layout: layout,
                                          order: record.byteOrder, report: report)
                }
                do {
                    if pass == 1 { try replay!.pass1(trans) } else { try replay!.pass2(trans) }
                } catch let e as XFSLogReplayError {
                    throw ImageError(offset: layout.byteOffset(record.block), structure: "XFS log block \(record.block)",
                                     reason: "transaction at LSN \(XFSLogRecordHeader.describe(trans.lsn)): \(e.reason)",
                                     errno: .ioError)
                }
            }
            report.records = walk.records
            report.wrapped = walk.wrapped
        }
        guard let replay else { return nil }
        try replay.flushPending()
        // xlog_recover_finish -> xlog_recover_process_intents: the unfinished bmap intents are
        // carried out on the replayed metadata, in log order (XFSLogBmapIntents.swift).
        do {
            try replay.finishBmapIntents(dataBlocks: XFSLogRecovery.be64(superblock, 8))
        } catch let e as XFSLogReplayError {
            throw ImageError(offset: 0, structure: "XFS log intent", reason: e.reason, errno: .ioError)
        }
        let records = report.records, wrapped = report.wrapped
        report = replay.report
        report.records = records
        report.wrapped = wrapped
        report.unfinishedIntents = replay.intents.unfinished
        report.intentItems = replay.intents.seen
        report.overlayBytes = overlay.bytesInMemory
        return (overlay, report)
    }

    static func be64(_ b: [UInt8], _ o: Int) -> UInt64 {
        guard o >= 0, o + 8 <= b.count else { return 0 }
        return b[o ..< o + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Walks the records from the tail to the head, checking each one's CRC and putting back
    /// its cycle-stamped words, and hands each committed transaction to `commit` together with
    /// the record it committed in (xlog_do_recovery_pass, xlog_recover_process).
    static func walkRecords(_ reader: XFSLogReader, _ ends: XFSLogEnds, fsUUID: [UInt8], isV5: Bool,
                            commit: (XFSLogRecordHeader, XFSLogTransaction) throws -> Void) throws -> (records: Int, wrapped: Bool) {
        let layout = reader.layout
        let total = reader.distance(from: ends.tail, to: ends.head)
        var walked: UInt32 = 0
        var block = ends.tail
        var records = 0
        var wrapped = false
        var assembler: XFSLogTransactionAssembler? = nil
        while walked < total {
            let record = try XFSLogRecordHeader(try reader.read(block, count: 1), block: block, layout: layout,
                                                structureOffset: layout.byteOffset(block))
            let damage = { (reason: String) in reader.damage(at: record.block, reason) }
            guard UInt32(record.totalBlocks) <= total - walked else {
                throw damage("log record of \(record.totalBlocks) blocks runs past the head at log block \(ends.head)")
            }
            guard record.uuid == fsUUID else { throw damage("log record belongs to another filesystem (h_fs_uuid)") }
            let (ext, raw) = try reader.readRecord(record)
            if !record.crcMatches(extendedHeaders: ext, data: raw), isV5 {
                // Past the head's torn-write window a bad CRC on v5 is corruption the kernel
                // refuses to mount with.
                throw damage("log record CRC mismatch")
            }
            var data = raw
            record.unpack(&data, extendedHeaders: ext)
            if assembler == nil { assembler = XFSLogTransactionAssembler(itemOrder: record.byteOrder) }
            guard assembler?.itemOrder == record.byteOrder else { throw damage("log record byte order differs from the records before it") }
            try assembler!.add(record: record, data: data, damage: damage) { trans in try commit(record, trans) }
            walked += UInt32(record.totalBlocks)
            if UInt64(block) + UInt64(record.totalBlocks) >= UInt64(layout.blocks) { wrapped = true }
            block = layout.wrap(UInt64(block) + UInt64(record.totalBlocks))
            records += 1
        }
        return (records, wrapped)
    }
}
