import SystemPackage

/// The headers and the log of a writable open. Guarded by `VHDXImage.session`, used under
/// `VHDXImage.writeLock`.
struct VHDXWriteSession {
    var headers: VHDXHeaderWriter
    var log: VHDXLogWriter
}

/// Writing a VHDX, fixed or dynamic, as QEMU's vhdx_co_writev does ([MS-VHDX] "2.5 BAT"): the
/// first write of an open gives both headers a new FileWriteGuid and DataWriteGuid
/// (vhdx_user_visible_write); a write to a fully present block goes in place; a write to a
/// block that reads as zeros (not present, undefined, zero, unmapped) allocates a new block at
/// the end of the file rounded up to 1 MiB (vhdx_allocate_block), grown there by truncation so
/// that the rest of the block reads as zeros, the written bytes in it, and points the block's
/// BAT entry at it, state fully present. A fixed image has every block present and is written
/// in place only.
///
/// BAT entries reach the file only through the log (`VHDXLogWriter`, as QEMU's
/// vhdx_log_write_and_flush). QEMU logs each entry right after its block's data; here changed
/// entries stay in memory until `flush`, which syncs the blocks first and then logs the changed
/// BAT sectors, many to one entry, like the other writers here keep their tables until flush.
/// A crash before that leaves blocks no entry names (space at the end of the file, which
/// `qemu-img check` does not look for); during the log update, a log that any replay (ours at
/// the next writable open, `qemu-img check -r all`, Hyper-V) finishes; never an entry pointing
/// at unwritten data.
///
/// Zeros (`buffer` nil): in place in present blocks; nothing at all where a block reads as zeros
/// already (QEMU, which has no zero-write path, would allocate a block of zeros there).
extension VHDXImage: AppendingFormatWriter {
    private static let structure = "VHDX image"
    /// How much a dirty log's replay may grow the file at a writable open: a crashed writer's
    /// LastFileOffset is at most a few blocks past what it made durable.
    static let maxReplayGrowth: UInt64 = 1 << 30

    /// The checks a writable open adds to reading's (all on `view`, the file as a replay of its
    /// log would leave it, so that a refusal writes nothing), then the log replayed into `file`.
    static func openForWriting(_ file: any BlockDevice, view: any BlockDevice, replayed: Bool, metadata: VHDXMetadata,
                               bat: [UInt64]) throws -> VHDXWriteSession {
        let path = file.displayName
        func refuse(_ at: UInt64, _ structure: String, _ reason: String, _ errno: Errno = .notSupported) -> ImageError {
            ImageError(path: path, offset: at, structure: structure, reason: reason + ": not written", errno: errno)
        }
        guard file.isWritable else { throw refuse(0, Self.structure, "the image file is not open for writing", .readOnlyFileSystem) }
        let (header, slot) = try VHDXMetadata.currentHeaderSlot(of: file)
        let headerAt = VHDXFormat.headerOffsets[slot]
        // "2.2.2 Header": log version 0, LogOffset and LogLength multiples of 1 MiB (QEMU's
        // vhdx_parse_log refuses anything else); the writer needs a log to update the BAT.
        guard header.logVersion == 0 else {
            throw refuse(headerAt + 64, VHDXHeaderWriter.structure, "log version \(header.logVersion) is not 0")
        }
        let mib = VHDXFormat.mib
        let logLength = UInt64(header.logLength)
        let (logEnd, o1) = header.logOffset.addingReportingOverflow(logLength)
        guard logLength >= mib, logLength % mib == 0, header.logOffset >= mib, header.logOffset % mib == 0, !o1, logEnd <= view.size else {
            throw refuse(headerAt + 68, VHDXHeaderWriter.structure,
                         "log at 0x\(String(header.logOffset, radix: 16)) (\(logLength) bytes) is not 1 MiB aligned, empty or outside the file")
        }
        // The structures no block may overlap: the header section, the log, the BAT, the metadata.
        let sector = UInt64(VHDXLog.sectorSize)
        let batBytes = UInt64(bat.count) * 8
        let batEnd = (metadata.batOffset + batBytes + sector - 1) / sector * sector   // region checked inside the file at open
        guard metadata.batOffset % sector == 0, batEnd <= view.size else {
            throw refuse(VHDXFormat.regionTableOffsets[0], "VHDX region table",
                         "BAT at 0x\(String(metadata.batOffset, radix: 16)) is not 4 KiB aligned or its last sector is outside the file")
        }
        let log = header.logOffset ..< logEnd
        let regions: [(name: String, range: Range<UInt64>)] = [
            ("the header section", 0 ..< mib), ("the log", log),
            ("the BAT", metadata.batOffset ..< max(batEnd, metadata.batOffset + UInt64(metadata.batLength))),
            ("the metadata region", metadata.metadataOffset ..< metadata.metadataOffset + UInt64(metadata.metadataLength)),
        ]
        for (i, a) in regions.enumerated() {
            if let b = regions[(i + 1)...].first(where: { $0.range.overlaps(a.range) }) {
                throw refuse(VHDXFormat.regionTableOffsets[0], "VHDX region table", "\(a.name) overlaps \(b.name)", .ioError)
            }
        }
        // Payload entries: states a disk without a parent has, blocks inside the file, clear of
        // the metadata and of each other (a write into one must never land in another).
        var blocks: [(range: Range<UInt64>, index: Int)] = []
        let chunk = Int(metadata.chunkRatio)
        for index in 0 ..< Int(metadata.dataBlocks) {
            let entry = bat[index + index / chunk]
            let at = metadata.batOffset + UInt64(index + index / chunk) * 8
            switch VHDXFormat.PayloadState(rawValue: UInt8(entry & VHDXFormat.batStateMask)) {
            case .notPresent, .undefined, .zero, .unmapped, .unmappedV095: continue
            case .partiallyPresent, nil:
                throw refuse(at, batStructure, "entry \(index) has block state \(entry & VHDXFormat.batStateMask), which a disk without a parent cannot have", .ioError)
            case .fullyPresent:
                let start = (entry >> VHDXFormat.batOffsetShift) << VHDXFormat.batOffsetShift
                let length = min(UInt64(metadata.blockSize), metadata.virtualSize - UInt64(index) * UInt64(metadata.blockSize))
                let (end, o2) = start.addingReportingOverflow(length)
                guard !o2, end <= view.size else {
                    throw refuse(at, batStructure, "entry \(index) puts block data at 0x\(String(start, radix: 16)), past the end of the file (\(view.size) bytes)", .ioError)
                }
                if let r = regions.first(where: { $0.range.overlaps(start ..< end) }) {
                    throw refuse(at, batStructure, "entry \(index) puts block data at 0x\(String(start, radix: 16)), over \(r.name)", .ioError)
                }
                blocks.append((start ..< end, index))
            }
        }
        blocks.sort { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(blocks, blocks.dropFirst()) where a.range.overlaps(b.range) {
            throw refuse(metadata.batOffset + UInt64(b.index + b.index / chunk) * 8, batStructure,
                         "entries \(a.index) and \(b.index) share block data at 0x\(String(b.range.lowerBound, radix: 16))", .ioError)
        }

        var session = VHDXWriteSession(headers: VHDXHeaderWriter(header: header, slot: slot),
                                       log: VHDXLogWriter(offset: header.logOffset, length: logLength))
        guard replayed, let replay = try VHDXLog.activeSequence(in: file, header: header) else { return session }
        // The replay may not rewrite what this writer keeps in memory (headers, the log itself).
        for update in replay.updates {
            let (start, length): (UInt64, UInt64)
            switch update {
            case .data(let offset, let bytes): (start, length) = (offset, UInt64(bytes.count))
            case .zero(let offset, let count): (start, length) = (offset, count)
            }
            let range = start ..< start.saturatingAdd(length)
            if range.overlaps(0 ..< mib) || range.overlaps(log) {
                throw refuse(header.logOffset, VHDXLogWriter.structure,
                             "the log's active sequence writes at 0x\(String(start, radix: 16)), into the \(range.overlaps(log) ? "log" : "headers") (a read-only open replays it in memory)")
            }
        }
        if replay.lastFileOffset > file.size {
            guard file is RawImage, replay.lastFileOffset - file.size <= maxReplayGrowth else {
                throw refuse(header.logOffset, VHDXLogWriter.structure,
                             "the log's replay would grow the file from \(file.size) to \(replay.lastFileOffset) bytes")
            }
        }
        try VHDXLogWriter.replay(replay, into: file, headers: &session.headers)
        return session
    }

    /// One write, block by block; `buffer` nil writes zeros. Holds `writeLock`.
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        try withSession { try $0.headers.userVisibleWrite(file) }
        try writeByBlock(buffer, length: length, at: offset, into: file, blockSize: blockSize,
                         hostOffset: { try hostOffset($0, within: $1) },
                         allocate: { index, data, within in try allocate(index, data: data, within: within) })
    }

    /// `body` on the session of this writable open.
    private func withSession(_ body: (inout VHDXWriteSession) throws -> Void) throws {
        try session.withLock { s in
            guard var current = s else { throw readOnlyError(offset: 0) }
            defer { s = current }
            try body(&current)
        }
    }

    /// Appends a block for payload block `index` holding `data` at `within`: the file grown to
    /// the block's end (zeros), the data written; the BAT entry changes in memory only.
    private func allocate(_ index: Int, data: UnsafeRawBufferPointer, within: UInt64) throws {
        guard let raw = file as? RawImage else {
            throw ImageError(path: displayName, offset: UInt64(index) * blockSize, structure: "write",
                             reason: "allocating a VHDX block needs the image file to grow, which an NBD export cannot", errno: .notSupported)
        }
        let mib = VHDXFormat.mib
        let at = (raw.size + mib - 1) / mib * mib   // the file size is below 2^63
        guard at <= (UInt64(1) << 62) - blockSize else {
            throw ImageError(path: displayName, offset: at, structure: Self.batStructure,
                             reason: "the file is too large for another block", errno: .noSpace)
        }
        try raw.extend(to: at + blockSize)
        try raw.write(data, at: at + within)
        let entry = index + index / Int(metadata.chunkRatio)
        state.withLock { s in
            s.bat[entry] = at | UInt64(VHDXFormat.PayloadState.fullyPresent.rawValue)
            s.dirtySectors.insert(entry * 8 / VHDXLog.sectorSize)
        }
    }

    /// Makes earlier writes durable: the blocks synced, then the changed BAT sectors through the
    /// log, as many to an entry as the log holds (`VHDXLogWriter.write` syncs, logs, syncs,
    /// writes them in place, syncs, empties the log).
    func flush() throws {
        guard isWritable else { return }
        try writeLock.withLock {
            try file.flush()
            let (bat, dirty) = state.withLock { ($0.bat, $0.dirtySectors) }
            guard !dirty.isEmpty else { return }
            let perSector = VHDXLog.sectorSize / 8
            try withSession { s in
                let sorted = dirty.sorted()
                let perEntry = s.log.maxSectorsPerEntry
                var first = 0
                while first < sorted.count {
                    let batch = try sorted[first ..< min(first + perEntry, sorted.count)].map { sector in
                        // The sector as on disk (entries past the BAT's end stay as they are), ours over it.
                        let at = metadata.batOffset + UInt64(sector * VHDXLog.sectorSize)
                        var bytes = try file.readBytes(at: at, count: VHDXLog.sectorSize)
                        for i in 0 ..< perSector where sector * perSector + i < bat.count {
                            LittleEndianBytes.put64(bat[sector * perSector + i], into: &bytes, at: i * 8)
                        }
                        return (offset: at, bytes: bytes)
                    }
                    try s.log.write(batch, file: file, headers: &s.headers)
                    first += perEntry
                }
            }
            state.withLock { $0.dirtySectors.subtract(dirty) }
        }
    }
}
