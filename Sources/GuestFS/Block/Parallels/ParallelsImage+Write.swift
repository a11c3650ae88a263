import SystemPackage

/// The BAT and where the writer appends. Guarded by `ParallelsImage.state`.
struct ParallelsWriteState {
    var bat: [UInt32]
    /// Where the next cluster goes (past the file's end and the BAT, cluster-aligned).
    var nextCluster: UInt64 = 0
    /// Entries changed since the last flush (their clusters are written).
    var dirty: Set<Int> = []
    /// Whether `inuse` is set on disk by this writer.
    var inUse = false
}

/// Writing a Parallels image (docs/interop/parallels.txt; QEMU's parallels_co_writev and
/// allocate_clusters): a write to an allocated cluster goes in place; an unallocated one gets a
/// cluster appended at the end of the file (zeros around the written bytes). As QEMU does, a
/// writable open sets `inuse` ("Ynot", the image is open for writing) and a clean close clears
/// it; qemu-img check reports an image left with it set as not closed correctly.
///
/// Crash safety: BAT entries change in memory until `flush`, which syncs the data first, then
/// writes the entries and syncs again; a crash before that leaves appended clusters no entry
/// names (space leaked at the end of the image), never an entry pointing at unwritten data.
extension ParallelsImage: AppendingFormatWriter {
    private var inUseBytes: [UInt8] { (0 ..< 4).map { UInt8(truncatingIfNeeded: ParallelsFormat.inUseMagic >> (8 * UInt32($0))) } }

    func openForWriting() throws {
        func refuse(_ at: UInt64, _ reason: String, _ errno: Errno = .readOnlyFileSystem) -> ImageError {
            ImageError(path: displayName, offset: at, structure: ParallelsFormat.structure, reason: reason, errno: errno)
        }
        guard file is RawImage, file.isWritable else {
            throw refuse(0, "the image file is not a local file open for writing (a Parallels image grows as it is written)")
        }
        // Every cluster after the BAT, none shared: a write in place must not reach the metadata.
        let batEnd = UInt64(ParallelsFormat.headerSize) + UInt64(header.batEntries) * 4
        let dataStart = max(batEnd, UInt64(header.dataOffset) * ParallelsFormat.sectorSize)
        var hosts: [(UInt64, Int)] = []
        for index in bat.indices {
            if let host = try hostOffset(ofCluster: UInt64(index)) { hosts.append((host, index)) }
        }
        hosts.sort { $0.0 < $1.0 }
        let clusterSize = header.clusterSize
        for (k, (host, index)) in hosts.enumerated() {
            let shared = k > 0 && hosts[k - 1].0 + clusterSize > host
            guard host >= dataStart, !shared, host.saturatingAdd(clusterSize) <= file.size else {
                throw refuse(UInt64(ParallelsFormat.headerSize) + UInt64(index) * 4,
                             "BAT entry \(index) puts its cluster at 0x\(String(host, radix: 16)), \(shared ? "over another cluster" : host < dataStart ? "over the header or the BAT" : "past the end of the file"): not written; repair it with 'qemu-img check -r all'",
                             .ioError)
            }
        }
        // Appends go after everything, on a cluster boundary (extended images count in clusters).
        let unit = header.offsetMultiplier * ParallelsFormat.sectorSize
        let end = max(file.size, dataStart, hosts.last.map { $0.0 + clusterSize } ?? 0)
        state.withLock { $0.nextCluster = (end + unit - 1) / unit * unit }
        // QEMU's parallels_open for writing: inuse set (and synced) before anything else.
        try file.writeBytes(inUseBytes, at: 44)
        try file.flush()
        state.withLock { $0.inUse = true }
    }

    /// Zeros (`buffer` nil): in place in allocated clusters, nothing in unallocated ones (they read as zeros).
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        let clusterSize = header.clusterSize
        var done = 0
        while done < length {
            let guest = offset + UInt64(done)
            let cluster = guest / clusterSize
            let within = Int(guest % clusterSize)
            let run = min(length - done, Int(clusterSize) - within)
            let part = buffer.map { UnsafeRawBufferPointer(rebasing: $0[done ..< done + run]) }
            if let host = try hostOffset(ofCluster: cluster) {
                if let part { try file.write(part, at: host + UInt64(within)) } else {
                    try [UInt8](repeating: 0, count: run).withUnsafeBytes { try file.write($0, at: host + UInt64(within)) }
                }
            } else if let part {
                try allocate(cluster, part, within: within)
            }
            done += run
        }
    }

    private func allocate(_ cluster: UInt64, _ data: UnsafeRawBufferPointer, within: Int) throws {
        guard let raw = file as? RawImage, cluster < UInt64(header.batEntries) else {
            throw ImageError(path: displayName, offset: cluster * header.clusterSize, structure: Self.batStructure,
                             reason: "cluster \(cluster) has no BAT entry (the BAT has \(header.batEntries))", errno: .noSpace)
        }
        let at = state.withLock { $0.nextCluster }
        let unit = header.offsetMultiplier * ParallelsFormat.sectorSize
        guard at / unit <= UInt64(UInt32.max) else {
            throw ImageError(path: displayName, offset: at, structure: Self.batStructure,
                             reason: "the file is too large for another cluster (BAT entries are 32-bit)", errno: .noSpace)
        }
        let after = Int(header.clusterSize) - within - data.count
        try raw.writeExtending(gathering: ZeroBytes.pieces(within) + [data] + ZeroBytes.pieces(after), at: at)
        state.withLock { s in
            s.bat[Int(cluster)] = UInt32(at / unit)
            s.nextCluster = at + header.clusterSize
            s.dirty.insert(Int(cluster))
        }
    }

    /// Makes earlier writes durable: data synced, then the changed BAT entries (a 512-byte
    /// sector of them at a time), synced again.
    func flush() throws {
        guard isWritable else { return }
        try writeLock.withLock {
            try file.flush()
            let (bat, dirty) = state.withLock { ($0.bat, $0.dirty) }
            guard !dirty.isEmpty else { return }
            let perSector = Int(ParallelsFormat.sectorSize) / 4
            for sector in Set(dirty.map { $0 / perSector }).sorted() {
                let first = sector * perSector, end = min(bat.count, first + perSector)
                var bytes: [UInt8] = []
                bytes.reserveCapacity((end - first) * 4)
                for i in first ..< end { LittleEndianBytes.append32(bat[i], to: &bytes) }
                try file.writeBytes(bytes, at: UInt64(ParallelsFormat.headerSize) + UInt64(first) * 4)
            }
            try file.flush()
            state.withLock { $0.dirty.subtract(dirty) }
        }
    }

    /// Flushes and clears `inuse` (parallels_close).
    func close() throws {
        guard isWritable, state.withLock({ $0.inUse }) else { return }
        try flush()
        try file.writeBytes([0, 0, 0, 0], at: 44)
        try file.flush()
        state.withLock { $0.inUse = false }
    }
}
