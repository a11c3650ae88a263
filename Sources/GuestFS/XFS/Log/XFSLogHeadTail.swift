import GuestFSBlock
import GuestFSFilesystem

/// Finding the head and tail of the log ring, after xfs_log_recover.c xlog_find_head,
/// xlog_find_tail, xlog_verify_head and xlog_check_unmount_rec ("XFS Algorithms & Data
/// Structures" §13.4 "Log Recovery"; the cycle stamping of §13.3).
///
/// Every BB the log writes carries the cycle (pass number round the ring) it was written in.
/// The head is where the current cycle's writes stop: the ring reads `c c c … c | c-1 … c-1`
/// (or `1 1 … 1 | 0 0 …` before the first wrap). Up to XLOG_MAX_ICLOGS records may have been in
/// flight at the crash and completed out of order, so holes of the old cycle just before the
/// boundary move the head back to the first hole, and a last record that does not reach the head
/// moves it back to that record's start. The tail is the h_tail_lsn of the last record.
struct XFSLogEnds {
    var head: UInt32
    var tail: UInt32
    /// The cycle the head record was written in.
    var headCycle: UInt32
    /// The log ends with an unmount record right before the head: nothing to recover.
    var clean: Bool
    /// When the last records failed their CRC (a torn write), the block of the first bad one
    /// (the head was moved back to it).
    var tornAt: UInt32?
}

extension XFSLogReader {
    /// BBs searched back from a head candidate for holes and record headers
    /// (XLOG_TOTAL_REC_SHIFT: XLOG_MAX_ICLOGS records of the largest iclog).
    var searchWindow: UInt32 {
        let bytes = UInt32(XFSLogLayout.maxInFlightRecords) * (layout.isV2 ? XFSLogLayout.maxRecordBytes : 32 * 1024)
        return min(bytes / 512, layout.blocks)
    }

    func findEnds() throws -> XFSLogEnds? {
        let n = layout.blocks
        let firstCycle = try cycle(0)
        // A ring never written (cycle 0 in BB 0): nothing to recover (xlog_find_zeroed).
        if firstCycle == 0 { return nil }
        let lastCycle = try cycle(n - 1)
        var head: UInt32
        let stopCycle: UInt32
        if firstCycle == lastCycle {
            // The whole ring has the current cycle: the head is at its end (= 0), unless a hole
            // of the previous cycle lies in the last window.
            head = n
            stopCycle = firstCycle &- 1
        } else {
            guard lastCycle == firstCycle &- 1 else {
                throw damage(at: n - 1, "log cycle \(lastCycle) at the end of the log does not follow cycle \(firstCycle) at its start")
            }
            stopCycle = lastCycle
            // Binary search for the first BB of the previous cycle (xlog_find_cycle_start):
            // BB `low` has firstCycle, BB `high` has lastCycle.
            var low: UInt32 = 0, high = n - 1
            while high - low > 1 {
                let mid = low + (high - low) / 2
                if try cycle(mid) == stopCycle { high = mid } else { low = mid }
            }
            head = high
        }
        // Holes of the previous cycle in the window before the candidate (xlog_find_verify_cycle).
        let window = searchWindow
        let from = head > window ? head - window : 0
        if from < head {
            let bytes = try read(from, count: Int(head - from))
            for i in 0 ..< Int(head - from) where XFSLogReader.cycle(of: bytes, at: i * 512) == stopCycle {
                head = from + UInt32(i)
                break
            }
        }
        // The last record must end at the head (xlog_find_verify_log_record).
        var last = try findRecordHeader(before: head % n, limit: window + 2 * 64)
        if layout.wrap(UInt64(last.block) + UInt64(last.totalBlocks)) != head % n {
            head = last.block
            last = try findRecordHeader(before: head, limit: window + 2 * 64)
        }
        head %= n
        let headCycle = last.cycle
        var ends = XFSLogEnds(head: head, tail: try tailBlock(of: last), headCycle: headCycle, clean: false)

        // Torn writes: check the CRC of the last few records; the head moves back to the first
        // record that fails (xlog_verify_head). A zero CRC is accepted as mkfs writes one.
        var candidates: [XFSLogRecordHeader] = [last]
        while candidates.count < XFSLogLayout.maxInFlightRecords, candidates[0].block != ends.tail {
            guard let previous = try? findRecordHeader(before: candidates[0].block, limit: window + 2 * 64) else { break }
            let span = distance(from: previous.block, to: ends.head)
            if span > distance(from: ends.tail, to: ends.head) { break }
            candidates.insert(previous, at: 0)
        }
        for record in candidates {
            let check = try readRecord(record)
            if record.crc != 0, !record.crcMatches(extendedHeaders: check.extendedHeaders, data: check.data) {
                ends.tornAt = record.block
                ends.head = record.block
                break
            }
        }
        if ends.tornAt != nil {
            if ends.head == ends.tail { return ends }
            last = try findRecordHeader(before: ends.head, limit: window + 2 * 64)
            ends.tail = try tailBlock(of: last)
            ends.headCycle = last.cycle
        }

        // An unmount record right before the head: the log is clean (xlog_check_unmount_rec).
        if layout.wrap(UInt64(last.block) + UInt64(last.totalBlocks)) == ends.head, last.opCount == 1 {
            let op = try read(layout.wrap(UInt64(last.block) + UInt64(last.headerBlocks)), count: 1)
            if op[9] & XFSLogOp.unmountTrans != 0 { ends.clean = true; ends.tail = ends.head }
        }
        if ends.head == ends.tail { ends.clean = true }
        return ends
    }

    /// BBs from `a` forward to `b` round the ring.
    func distance(from a: UInt32, to b: UInt32) -> UInt32 {
        b >= a ? b - a : layout.blocks - a + b
    }

    /// The tail the record names (BLOCK_LSN of h_tail_lsn), checked against the ring.
    func tailBlock(of record: XFSLogRecordHeader) throws -> UInt32 {
        let tail = record.tailLSN & 0xFFFF_FFFF
        guard tail < UInt64(layout.blocks), record.tailLSN >> 32 <= UInt64(record.cycle) else {
            throw damage(at: record.block, "tail LSN \(XFSLogRecordHeader.describe(record.tailLSN)) lies outside the log")
        }
        return UInt32(tail)
    }

    /// The nearest record header before `block`, going back round the ring at most `limit` BBs
    /// (xlog_rseek_logrec_hdr).
    func findRecordHeader(before block: UInt32, limit: UInt32) throws -> XFSLogRecordHeader {
        let n = layout.blocks
        var searched: UInt32 = 0
        var end = block == 0 ? n : block
        let chunk: UInt32 = 512
        while searched < min(limit, n) {
            let count = min(chunk, end, min(limit, n) - searched)
            let from = end - count
            let bytes = try read(from, count: Int(count))
            var i = Int(count) - 1
            while i >= 0 {
                if XFSLogReader.be32(bytes, i * 512) == XFSLogRecordHeader.magic {
                    let at = from + UInt32(i)
                    return try XFSLogRecordHeader(Array(bytes[i * 512 ..< i * 512 + 512]), block: at,
                                                  layout: layout, structureOffset: layout.byteOffset(at))
                }
                i -= 1
            }
            searched += count
            end = from == 0 ? n : from
        }
        throw damage(at: block, "no log record header in the \(min(limit, n)) blocks before log block \(block)")
    }

    /// The extended headers and data of `record`.
    func readRecord(_ record: XFSLogRecordHeader) throws -> (extendedHeaders: [UInt8], data: [UInt8]) {
        let ext = record.headerBlocks > 1
            ? try read(layout.wrap(UInt64(record.block) + 1), count: record.headerBlocks - 1) : []
        for j in 0 ..< max(0, record.headerBlocks - 1) {
            guard XFSLogReader.be32(ext, j * 512) == record.cycle else {
                throw damage(at: layout.wrap(UInt64(record.block) + 1 + UInt64(j)), "extended log record header has the wrong cycle")
            }
        }
        let data = try read(layout.wrap(UInt64(record.block) + UInt64(record.headerBlocks)), count: record.dataBlocks)
        return (ext, data)
    }

    func damage(at block: UInt32, _ reason: String) -> ImageError {
        ImageError(offset: layout.byteOffset(block % layout.blocks), structure: "XFS log block \(block % layout.blocks)",
                   reason: reason, errno: .ioError)
    }
}
