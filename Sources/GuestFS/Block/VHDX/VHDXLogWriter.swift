import SystemPackage

/// Writing the VHDX log ([MS-VHDX] "2.3 Log"; QEMU block/vhdx-log.c, vhdx_log_write,
/// vhdx_log_flush and vhdx_log_write_and_flush): metadata (BAT) sectors reach the file only
/// through a log entry, so a crash at any point leaves either the old sectors or a log whose
/// replay ("2.3.3") writes the new ones. One update, as QEMU makes it:
///
/// 1. sync the file (the blocks the new BAT entries point at are durable first);
/// 2. both headers get a new LogGuid (a log GUID of zero means an empty log);
/// 3. the entry (header, descriptors, data sectors, CRC-32C over all) is written at the log's
///    write position, wrapping round the circular buffer; sync;
/// 4. the sectors are written in place; sync;
/// 5. both headers get the LogGuid zero again: the log is empty.
///
/// Each entry is its own sequence (QEMU flushes the log after every entry), and the write
/// position moves on round the log from entry to entry, as QEMU's does; entries left from
/// earlier opens carry other log GUIDs and are never replayed.
struct VHDXLogWriter {
    let offset: UInt64
    let length: UInt64
    /// Where the next entry starts: a byte offset into the log (QEMU's log.write), 0 at open.
    private(set) var position: UInt64 = 0
    /// The next entry's sequence number (QEMU's log.sequence): 1, or one past a replayed sequence.
    private(set) var sequence: UInt64

    static let structure = "VHDX log"
    static let sector = UInt64(VHDXLog.sectorSize)

    init(offset: UInt64, length: UInt64, sequence: UInt64 = 1, position: UInt64 = 0) {
        self.offset = offset
        self.length = length
        self.sequence = max(1, sequence)
        self.position = position % length
    }

    /// Sectors a descriptor area for `count` descriptors takes: the 64-byte entry header and the
    /// 32-byte descriptors, 126 in the first sector, 128 in each next (QEMU's vhdx_compute_desc_sectors).
    static func descriptorSectors(_ count: Int) -> Int { (count + 2 + 127) / 128 }

    /// The most data sectors one entry can carry: with its descriptor sectors it must leave one
    /// log sector free (the circular buffer's "one sector open" rule QEMU follows).
    var maxSectorsPerEntry: Int {
        let total = Int(length / Self.sector)
        var n = max(0, total - 2)
        while n > 0, n + Self.descriptorSectors(n) > total - 1 { n -= 1 }
        return n
    }

    /// One log entry holding `sectors` (4 KiB-aligned file offsets and their new 4 KiB), laid out
    /// as "2.3.1" and QEMU's vhdx_log_write lay it out: the entry header, one data descriptor per
    /// sector (its first 8 and last 4 bytes in the descriptor), then the data sectors ("data",
    /// the sequence number's high half, bytes 8-4091, the low half); CRC-32C over it all.
    static func entry(sequence: UInt64, tail: UInt32, logGUID: [UInt8], fileSize: UInt64,
                      sectors: [(offset: UInt64, bytes: [UInt8])]) -> [UInt8] {
        let size = VHDXLog.sectorSize
        let descriptors = descriptorSectors(sectors.count)
        let length = (descriptors + sectors.count) * size
        var e = [UInt8](repeating: 0, count: length)
        func put(_ at: Int, _ bytes: [UInt8]) { e.replaceSubrange(at ..< at + bytes.count, with: bytes) }
        put(0, VHDXLog.entrySignature)
        LittleEndianBytes.put32(UInt32(length), into: &e, at: 8)
        LittleEndianBytes.put32(tail, into: &e, at: 12)
        LittleEndianBytes.put64(sequence, into: &e, at: 16)
        LittleEndianBytes.put32(UInt32(sectors.count), into: &e, at: 24)
        put(32, logGUID)
        // FlushedFileOffset and LastFileOffset: the file's size, as QEMU writes both.
        LittleEndianBytes.put64(fileSize, into: &e, at: 48)
        LittleEndianBytes.put64(fileSize, into: &e, at: 56)
        for (i, s) in sectors.enumerated() {
            let d = 64 + 32 * i
            put(d, VHDXLog.dataDescriptorSignature)
            put(d + 4, Array(s.bytes[size - 4 ..< size]))
            put(d + 8, Array(s.bytes[0 ..< 8]))
            LittleEndianBytes.put64(s.offset, into: &e, at: d + 16)
            LittleEndianBytes.put64(sequence, into: &e, at: d + 24)
            let at = (descriptors + i) * size
            put(at, VHDXLog.dataSectorSignature)
            LittleEndianBytes.put32(UInt32(truncatingIfNeeded: sequence >> 32), into: &e, at: at + 4)
            put(at + 8, Array(s.bytes[8 ..< size - 4]))
            LittleEndianBytes.put32(UInt32(truncatingIfNeeded: sequence), into: &e, at: at + size - 4)
        }
        LittleEndianBytes.put32(VHDXFormat.crc32c(e, checksumAt: 4), into: &e, at: 4)
        return e
    }

    /// Writes `sectors` (4 KiB-aligned, at most `maxSectorsPerEntry`) to the file through one
    /// log entry, steps 1-5 above.
    mutating func write(_ sectors: [(offset: UInt64, bytes: [UInt8])], file: any BlockDevice,
                        headers: inout VHDXHeaderWriter) throws {
        precondition(!sectors.isEmpty && sectors.count <= maxSectorsPerEntry && sectors.allSatisfy { $0.offset % Self.sector == 0 && $0.bytes.count == VHDXLog.sectorSize })
        try file.flush()
        try headers.userVisibleWrite(file)
        var guid = VHDXFormat.randomGUID()
        while guid == VHDXHeaderWriter.nullGUID { guid = VHDXFormat.randomGUID() }
        try headers.update(file, logGUID: guid)
        let start = position
        let bytes = Self.entry(sequence: sequence, tail: UInt32(start), logGUID: guid, fileSize: file.size, sectors: sectors)
        try put(bytes, into: file)
        try file.flush()
        for s in sectors { try file.writeBytes(s.bytes, at: s.offset) }
        try file.flush()
        try headers.update(file, logGUID: VHDXHeaderWriter.nullGUID)
        position = (start + UInt64(bytes.count)) % length
        sequence = sequence == UInt64.max ? 1 : sequence + 1
    }

    /// Writes `entry` at the write position, round the circular buffer: the part up to the log's
    /// end, the rest from its start.
    func put(_ entry: [UInt8], into file: any BlockDevice) throws {
        let first = Int(min(UInt64(entry.count), length - position))
        try file.writeBytes(Array(entry[..<first]), at: offset + position)
        if first < entry.count { try file.writeBytes(Array(entry[first...]), at: offset) }
    }

    /// A dirty log's active sequence written into the file at a writable open, as QEMU's
    /// vhdx_log_flush does at open: a new DataWriteGuid first, every update in place, the file
    /// grown to the entries' LastFileOffset (rounded up to 1 MiB) when it is shorter, a sync,
    /// then the headers' LogGuid zeroed. `replay` comes from `VHDXLog.activeSequence`, whose
    /// checks (and `VHDXImage`'s, on the replayed view) have passed.
    static func replay(_ replay: VHDXLog.Replay, into file: any BlockDevice, headers: inout VHDXHeaderWriter) throws {
        try headers.userVisibleWrite(file)
        let raw = file as? RawImage
        func put(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
            if let raw { try raw.writeExtending(bytes, at: offset) } else { try file.write(bytes, at: offset) }
        }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        for update in replay.updates {
            switch update {
            case .data(let offset, let bytes):
                try bytes.withUnsafeBytes { try put($0, at: offset) }
            case .zero(let offset, let length):
                var done: UInt64 = 0
                while done < length {
                    let n = Int(min(UInt64(zeros.count), length - done))
                    try zeros.withUnsafeBytes { try put(UnsafeRawBufferPointer(rebasing: $0[..<n]), at: offset + done) }
                    done += UInt64(n)
                }
            }
        }
        if replay.lastFileOffset > file.size, let raw {
            let mib = VHDXFormat.mib
            try raw.extend(to: (replay.lastFileOffset + mib - 1) / mib * mib)
        }
        try file.flush()
        try headers.update(file, logGUID: VHDXHeaderWriter.nullGUID)
    }
}
