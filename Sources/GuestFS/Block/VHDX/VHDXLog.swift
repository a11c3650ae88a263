import SystemPackage

/// The VHDX metadata log ([MS-VHDX] "2.3 Log"; QEMU block/vhdx-log.c): a circular buffer of
/// 4 KiB sectors holding entries, each a header, descriptors and data sectors, that describe
/// 4 KiB writes to the file's metadata (BAT, metadata region). A writer logs an update, flushes,
/// applies it in place and then clears the header's log GUID; a crash in between (Hyper-V
/// leaves disks so) leaves the GUID set and updates the file does not have yet.
///
/// [MS-VHDX] "2.3.3 Log Replay" requires the active sequence to be replayed before the file is
/// read, even read-only. QEMU refuses a read-only open of such a file ("contains a log that
/// needs to be replayed"); imagemount replays it into memory (`replayedView`), so the file keeps
/// every byte and the reader sees what Hyper-V or `qemu-img check -r all` would leave.
enum VHDXLog {
    static let sectorSize = 4096
    /// "2.3.1.1 Entry Header": 64 bytes, signature "loge".
    static let entrySignature = Array("loge".utf8)
    static let dataDescriptorSignature = Array("desc".utf8)
    static let zeroDescriptorSignature = Array("zero".utf8)
    static let dataSectorSignature = Array("data".utf8)
    /// The largest log imagemount reads into memory to search (qemu-img and Hyper-V make 1 MiB).
    static let maxLogLength: UInt32 = 32 << 20
    /// The most bytes the replayed writes may hold in memory (data and zeroed sectors together).
    static let maxReplayBytes: UInt64 = 32 << 20

    /// One 4 KiB-aligned update of the file.
    enum Update: Equatable {
        case data(offset: UInt64, bytes: [UInt8])
        case zero(offset: UInt64, length: UInt64)
    }

    /// The active sequence's updates, in order, and the file sizes its last entry records.
    struct Replay {
        var updates: [Update]
        var flushedFileOffset: UInt64
        var lastFileOffset: UInt64
        var entries: Int
    }

    /// A file with a dirty log (`header` the current one), seen with its active sequence
    /// replayed in memory; `file` itself when there is no active sequence (a log GUID with no
    /// valid entries, as [MS-VHDX] allows).
    static func replayedView(of file: any BlockDevice, header: VHDXFormat.Header) throws -> any BlockDevice {
        guard let replay = try activeSequence(in: file, header: header) else { return file }
        let path = file.displayName
        // "2.3.1.1": FlushedFileOffset is the file size the writer had made durable; a smaller
        // file was truncated after the crash (QEMU refuses it too).
        guard replay.flushedFileOffset <= file.size else {
            throw ImageError(path: path, offset: UInt64(header.logOffset), structure: "VHDX log",
                             reason: "the log's entries expect the file to hold \(replay.flushedFileOffset) bytes, but it has \(file.size): the file was truncated")
        }
        var end = max(file.size, replay.lastFileOffset)
        for update in replay.updates {
            let (last, overflow): (UInt64, Bool)
            switch update {
            case .data(let offset, _): (last, overflow) = offset.addingReportingOverflow(UInt64(sectorSize))
            case .zero(let offset, let length): (last, overflow) = offset.addingReportingOverflow(length)
            }
            guard !overflow, last <= VHDXFormat.maxVirtualSize * 2 else {
                throw ImageError(path: path, offset: UInt64(header.logOffset), structure: "VHDX log",
                                 reason: "a log entry writes past any file a VHDX can have (offset near 2^64)")
            }
            end = max(end, last)
        }
        let base: any BlockDevice = end > file.size ? ZeroExtendedDevice(base: file, size: end) : file
        let overlay = MemoryOverlayDevice(base: base, chunkSize: sectorSize, maxBytes: maxReplayBytes)
        do {
            for update in replay.updates {
                switch update {
                case .data(let offset, let bytes): try overlay.writeBytes(bytes, at: offset)
                case .zero(let offset, let length):
                    var at = offset
                    let zeros = [UInt8](repeating: 0, count: sectorSize)
                    while at < offset + length {
                        try overlay.writeBytes(zeros, at: at)
                        at += UInt64(sectorSize)
                    }
                }
            }
        } catch let error as ImageError where error.errno == .noSpace {
            throw ImageError(path: path, offset: UInt64(header.logOffset), structure: "VHDX log",
                             reason: "replaying the log would hold more than \(maxReplayBytes >> 20) MiB in memory", errno: .fileTooLarge)
        }
        return overlay
    }

    /// The active sequence of `file`'s log, or nil when the log holds none. As QEMU's
    /// vhdx_log_search: every sector is tried as the start of an entry; a sequence is a run of
    /// valid entries whose sequence numbers go up by one, wrapping round the buffer; the active
    /// one is the sequence with the highest sequence number ("2.3.3").
    static func activeSequence(in file: any BlockDevice, header: VHDXFormat.Header) throws -> Replay? {
        let path = file.displayName
        func bad(_ reason: String, _ errno: Errno = .invalidArgument) -> ImageError {
            ImageError(path: path, offset: header.logOffset, structure: "VHDX log", reason: reason, errno: errno)
        }
        // "2.2.2 Header": LogOffset and LogLength are multiples of 1 MiB; LogVersion is 0.
        guard header.logVersion == 0 else { throw bad("log version \(header.logVersion) is not 0", .notSupported) }
        guard header.logLength != 0 else { return nil }
        guard header.logOffset >= VHDXFormat.mib, header.logOffset % VHDXFormat.mib == 0, UInt64(header.logLength) % VHDXFormat.mib == 0 else {
            throw bad("log at 0x\(String(header.logOffset, radix: 16)) (\(header.logLength) bytes) is not 1 MiB aligned")
        }
        guard header.logLength <= maxLogLength else {
            throw bad("log of \(header.logLength) bytes is larger than imagemount's limit of \(maxLogLength >> 20) MiB", .fileTooLarge)
        }
        let (logEnd, overflow) = header.logOffset.addingReportingOverflow(UInt64(header.logLength))
        guard !overflow, logEnd <= file.size else { throw bad("log of \(header.logLength) bytes runs past the end of the file") }
        let log = try file.readBytes(at: header.logOffset, count: Int(header.logLength))
        let sectors = log.count / sectorSize

        // The sequence with the highest last sequence number, its entries in order (each
        // parsed and checked once).
        var best: [Entry] = []
        var start = 0
        while start < sectors {
            guard let first = Entry(log: log, at: start, logGUID: header.logGUID) else {
                start += 1
                continue
            }
            var chain = [first], next = (start + first.sectors) % sectors, walked = first.sectors
            while walked < sectors, let last = chain.last, last.sequenceNumber < UInt64.max,
                  let entry = Entry(log: log, at: next, logGUID: header.logGUID),
                  entry.sequenceNumber == last.sequenceNumber + 1, walked + entry.sectors <= sectors {
                chain.append(entry)
                walked += entry.sectors
                next = (next + entry.sectors) % sectors
            }
            if let candidate = chain.last, candidate.sequenceNumber > best.last?.sequenceNumber ?? 0 {
                best = chain
            }
            // The sectors of this sequence cannot start a longer one with a higher number that
            // this one did not already reach; go on after it (QEMU does the same).
            if start + walked >= sectors { break }
            start += walked
        }
        guard let last = best.last else { return nil }
        let updates = best.flatMap { $0.updates(log: log) }
        return Replay(updates: updates, flushedFileOffset: last.flushedFileOffset,
                      lastFileOffset: last.lastFileOffset, entries: best.count)
    }

    /// One valid log entry ("2.3.1"): header checked, every descriptor and data sector checked,
    /// the CRC-32C over the whole entry checked. Invalid entries are not entries (nil).
    struct Entry {
        let startSector: Int
        let sectors: Int
        let sequenceNumber: UInt64
        let flushedFileOffset: UInt64
        let lastFileOffset: UInt64
        /// (descriptor, data sector index in the log) for data descriptors, nil for zero ones.
        let descriptors: [(signature: [UInt8], leading: UInt64, trailing: UInt32, fileOffset: UInt64, zeroLength: UInt64, dataSector: Int?)]

        init?(log: [UInt8], at start: Int, logGUID: [UInt8]) {
            let size = VHDXLog.sectorSize, total = log.count / size
            func sector(_ i: Int) -> ArraySlice<UInt8> {
                let s = (start + i) % total
                return log[s * size ..< (s + 1) * size]
            }
            let head = LittleEndianBytes(Array(sector(0)))
            guard head.slice(0, 4) == VHDXLog.entrySignature else { return nil }
            let entryLength = head.u32(8), sequence = head.u64(16), count = head.u32(24)
            // QEMU's vhdx_log_hdr_is_valid: a whole number of sectors within the log, a
            // sequence number above 0, the file's log GUID, the descriptors within the entry.
            guard entryLength > 0, entryLength % UInt32(size) == 0, Int(entryLength / UInt32(size)) <= total,
                  sequence != 0, head.slice(32, 16) == logGUID,
                  UInt64(count) * 32 <= UInt64(entryLength) else { return nil }
            let sectorCount = Int(entryLength) / size
            // The header (64 bytes) and the descriptors (32 each) fill the first sectors: 126
            // descriptors in the first, 128 in each next one (QEMU's vhdx_compute_desc_sectors).
            let descriptorSectors = (Int(count) + 2 + 127) / 128
            guard descriptorSectors <= sectorCount else { return nil }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(Int(entryLength))
            for i in 0 ..< sectorCount { bytes += sector(i) }
            guard head.u32(4) == VHDXFormat.crc32c(bytes, checksumAt: 4) else { return nil }
            let b = LittleEndianBytes(bytes)
            var descriptors: [(signature: [UInt8], leading: UInt64, trailing: UInt32, fileOffset: UInt64, zeroLength: UInt64, dataSector: Int?)] = []
            var nextData = descriptorSectors
            for i in 0 ..< Int(count) {
                let d = 64 + 32 * i
                let signature = b.slice(d, 4), fileOffset = b.u64(d + 16)
                guard b.u64(d + 24) == sequence, fileOffset % UInt64(size) == 0 else { return nil }
                if signature == VHDXLog.dataDescriptorSignature {
                    // "2.3.1.3 Data Sector": signature "data", the sequence number split in two.
                    guard nextData < sectorCount else { return nil }
                    let s = nextData * size
                    let high = UInt64(b.u32(s + 4)), low = UInt64(b.u32(s + size - 4))
                    guard b.slice(s, 4) == VHDXLog.dataSectorSignature, high << 32 | low == sequence else { return nil }
                    descriptors.append((signature, b.u64(d + 8), b.u32(d + 4), fileOffset, 0, nextData))
                    nextData += 1
                } else if signature == VHDXLog.zeroDescriptorSignature {
                    let length = b.u64(d + 8)
                    guard length % UInt64(size) == 0 else { return nil }
                    descriptors.append((signature, 0, 0, fileOffset, length, nil))
                } else {
                    return nil
                }
            }
            startSector = start
            sectors = sectorCount
            sequenceNumber = sequence
            flushedFileOffset = head.u64(48)
            lastFileOffset = head.u64(56)
            self.descriptors = descriptors
        }

        /// The writes this entry describes, in descriptor order: a data sector is its 8 leading
        /// bytes (in the descriptor), its 4 084 bytes, its 4 trailing bytes (in the descriptor).
        func updates(log: [UInt8]) -> [Update] {
            let size = VHDXLog.sectorSize, total = log.count / size
            return descriptors.map { d in
                guard let data = d.dataSector else { return .zero(offset: d.fileOffset, length: d.zeroLength) }
                let s = (startSector + data) % total * size
                var bytes = (0 ..< 8).map { UInt8(truncatingIfNeeded: d.leading >> (8 * $0)) }
                bytes += log[s + 8 ..< s + size - 4]
                bytes += (0 ..< 4).map { UInt8(truncatingIfNeeded: d.trailing >> (8 * $0)) }
                return .data(offset: d.fileOffset, bytes: bytes)
            }
        }
    }
}

/// `base` followed by zeros up to `size`: the file as a replayed log whose entries grew it
/// sees it (QEMU truncates the file up to the entry's LastFileOffset).
final class ZeroExtendedDevice: BlockDevice {
    let base: any BlockDevice
    let size: UInt64
    var isWritable: Bool { false }
    var displayName: String { base.displayName }

    init(base: any BlockDevice, size: UInt64) {
        self.base = base
        self.size = max(size, base.size)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        try base.readZeroPaddedPast(into: buffer, at: offset)
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }

    func flush() throws {}
}
