import SystemPackage

/// The reachable L1 entries and the writer's state. Guarded by `QEDImage.state`.
struct QEDWriteState {
    var l1: [UInt64]
    /// The header's feature bits as on disk (QED_F_NEED_CHECK comes and goes).
    var features: UInt64
    /// Where the next cluster is appended (the end of the file, rounded up to a cluster).
    var nextCluster: UInt64 = 0
    /// L1 entries changed since the last flush (their L2 tables are written or in the cache).
    var dirtyL1: Set<Int> = []
    /// Whether anything was allocated since the last flush.
    var allocated = false
}

/// Writing a QED image (docs/interop/qed_spec.txt, "Cluster allocation" and "Consistency
/// checking"; QEMU's qed_aio_write_alloc, qed_aio_write_l2_update, qed_aio_write_l1_update):
/// a write to an allocated cluster goes in place; an unallocated or zero cluster gets a new
/// cluster appended at the end of the file (the backing file's bytes, or zeros, around the
/// written ones), and a missing L2 table a new zeroed table after it.
///
/// QED_F_NEED_CHECK is set (and synced) before the first allocation and cleared once a flush
/// has made every table consistent, and at close, as QEMU's need-check timer and bdrv_qed_close
/// do. Order: data and new tables are appended first; L2 entries change in the write-back cache
/// (`l2Slices`) and L1 entries in memory; `flush` syncs the data, writes the L2 slices, syncs,
/// writes the L1 entries, syncs. A crash before then leaves appended clusters no table names
/// (leaks, which qemu-img check reports and QEMU's check repairs), never an entry pointing at
/// unwritten data.
extension QEDImage: AppendingFormatWriter {
    func openForWriting() throws {
        func refuse(_ reason: String, _ errno: Errno = .readOnlyFileSystem) -> ImageError {
            ImageError(path: displayName, offset: 16, structure: QEDFormat.structure, reason: reason, errno: errno)
        }
        guard file is RawImage, file.isWritable else {
            throw refuse("the image file is not a local file open for writing (a QED image grows as it is written)")
        }
        let result = check()
        guard result.corruptions == 0, result.checkErrors == 0 else {
            throw refuse("the image has \(result.corruptions) corrupt table entries: not written; repair it with 'qemu-img check -r all'", .ioError)
        }
        let cluster = UInt64(metadata.header.clusterSize)
        state.withLock { $0.nextCluster = (file.size + cluster - 1) / cluster * cluster }
        // A check without corruptions makes the tables consistent again (leaks aside), as
        // QEMU's qed_check with fix clears the flag.
        if metadata.needsCheck { try setNeedCheck(false) }
    }

    private func setNeedCheck(_ on: Bool) throws {
        let features = state.withLock { s in
            s.features = on ? s.features | QEDFormat.needCheck : s.features & ~QEDFormat.needCheck
            return s.features
        }
        try file.writeBytes((0 ..< 8).map { UInt8(truncatingIfNeeded: features >> (8 * UInt64($0))) }, at: 16)
        try file.flush()
    }

    /// Zeros (`buffer` nil): in place in allocated clusters; a whole unallocated cluster over a
    /// backing file becomes a zero cluster (L2 entry 1), part of one a new cluster; otherwise
    /// nothing, since it already reads as zeros.
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        let clusterSize = UInt64(metadata.header.clusterSize)
        var done = 0
        while done < length {
            let guest = offset + UInt64(done)
            let cluster = guest / clusterSize
            let within = Int(guest % clusterSize)
            let run = min(length - done, Int(clusterSize) - within)
            let part = buffer.map { UnsafeRawBufferPointer(rebasing: $0[done ..< done + run]) }
            switch try source(ofCluster: cluster) {
            case let .data(host):
                if let part { try file.write(part, at: host + UInt64(within)) } else {
                    try [UInt8](repeating: 0, count: run).withUnsafeBytes { try file.write($0, at: host + UInt64(within)) }
                }
            case .zero where part == nil:
                break
            case .backing where part == nil && backing == nil:
                break
            case .backing where part == nil && run == Int(clusterSize):
                try setL2Entry(cluster, QEDFormat.zeroCluster)
            case let source:
                if let buffer {
                    // Data into new clusters: this one and every next one the write reaches that
                    // has no cluster either, appended together (QEMU's qed_aio_write_alloc
                    // allocates a request's clusters in one go too).
                    var count: UInt64 = 1, end = done + run, last = source
                    while end < length {
                        let next = try self.source(ofCluster: cluster + count)
                        if case .data = next { break }
                        last = next
                        count += 1
                        end = min(length, end + Int(clusterSize))
                    }
                    try appendClusters(cluster, count: count, data: UnsafeRawBufferPointer(rebasing: buffer[done ..< end]),
                                       within: within, head: source, tail: last)
                    done = end
                    continue
                }
                // Zeros into part of a cluster that reads the backing file's bytes now.
                var bytes = [UInt8](repeating: 0, count: Int(clusterSize))
                try bytes.withUnsafeMutableBytes { out in
                    if source == .backing, let backing {
                        try backing.readZeroPaddedPast(into: out, at: cluster * clusterSize)
                    }
                    UnsafeMutableRawBufferPointer(rebasing: out[within ..< within + run]).initializeMemory(as: UInt8.self, repeating: 0)
                }
                let host = try bytes.withUnsafeBytes { try append([$0]) }
                try setL2Entry(cluster, host)
            }
            done += run
        }
    }

    /// Appends `count` new clusters from guest cluster `first` holding `data` at `within` of the
    /// first one, and points their L2 entries at them. What the write leaves of the first and
    /// last cluster reads as before: the backing file's bytes where the cluster had none (`head`,
    /// `tail` are `.backing`), zeros where it read as zeros.
    private func appendClusters(_ first: UInt64, count: UInt64, data: UnsafeRawBufferPointer, within: Int,
                                head: ClusterRead.Source, tail: ClusterRead.Source) throws {
        let clusterSize = UInt64(metadata.header.clusterSize)
        let tailBytes = Int(count * clusterSize) - within - data.count
        func fill(_ bytes: Int, at guest: UInt64, from source: ClusterRead.Source) throws -> [UInt8]? {
            guard bytes > 0, source == .backing, let backing else { return nil }
            var out = [UInt8](repeating: 0, count: bytes)
            try out.withUnsafeMutableBytes { try backing.readZeroPaddedPast(into: $0, at: guest) }
            return out
        }
        let start = first * clusterSize
        let headFill = try fill(within, at: start, from: head)
        let tailFill = try fill(tailBytes, at: start + UInt64(within + data.count), from: tail)
        let host = try (headFill ?? []).withUnsafeBytes { h in
            try (tailFill ?? []).withUnsafeBytes { t in
                try append((headFill == nil ? ZeroBytes.pieces(within) : [h]) + [data] +
                           (tailFill == nil ? ZeroBytes.pieces(tailBytes) : [t]))
            }
        }
        for i in 0 ..< count { try setL2Entry(first + i, host + i * clusterSize) }
    }

    /// Appends `pieces` (whole clusters, laid end to end) at the end of the file; the need-check
    /// flag first.
    private func append(_ pieces: [UnsafeRawBufferPointer]) throws -> UInt64 {
        guard let raw = file as? RawImage else { throw readOnlyError(offset: 0) }
        if state.withLock({ $0.features & QEDFormat.needCheck == 0 }) { try setNeedCheck(true) }
        let at = state.withLock { $0.nextCluster }
        let bytes = pieces.reduce(0) { $0 + $1.count }
        let (end, overflow) = at.addingReportingOverflow(UInt64(bytes))
        guard !overflow, end < (1 << 62) else {
            throw ImageError(path: displayName, offset: at, structure: "write", reason: "the image file cannot grow further", errno: .noSpace)
        }
        try raw.writeExtending(gathering: pieces, at: at)
        state.withLock { s in
            s.nextCluster = end
            s.allocated = true
        }
        return at
    }

    /// Points guest cluster `cluster` at `entry`, in the cached L2 slice; a missing L2 table is
    /// appended zeroed and its L1 entry changed in memory.
    private func setL2Entry(_ cluster: UInt64, _ entry: UInt64) throws {
        let h = metadata.header
        let l1Index = Int(cluster / h.tableEntries)
        let l2: UInt64
        if let table = try l2Table(l1Index) {
            l2 = table
        } else {
            l2 = try append(ZeroBytes.pieces(Int(h.tableBytes)))
            state.withLock { s in
                s.l1[l1Index] = l2
                s.dirtyL1.insert(l1Index)
            }
        }
        let byte = (cluster % h.tableEntries) * 8
        let slice = l2 + byte / sliceBytes * sliceBytes
        let within = Int(byte % sliceBytes)
        l2Slices.setDependsOnFlush()
        try l2Slices.update(at: slice) { $0.storeBytes(of: entry.littleEndian, toByteOffset: within, as: UInt64.self) }
    }

    /// Makes earlier writes durable: data and new tables synced, L2 slices written and synced, L1
    /// entries written and synced; then the need-check flag cleared.
    func flush() throws {
        guard isWritable else { return }
        try writeLock.withLock {
            let barrier = { try self.file.flush() }
            try barrier()
            try l2Slices.flush(write: { offset, bytes in try file.write(bytes, at: offset) }, barrier: barrier)
            let (l1, dirty) = state.withLock { ($0.l1, $0.dirtyL1) }
            if !dirty.isEmpty {
                try barrier()
                for index in dirty.sorted() {
                    try file.writeBytes((0 ..< 8).map { UInt8(truncatingIfNeeded: l1[index] >> (8 * UInt64($0))) },
                                        at: metadata.header.l1TableOffset + UInt64(index) * 8)
                }
            }
            try barrier()
            state.withLock { s in
                s.dirtyL1.subtract(dirty)
                s.allocated = false
            }
            if state.withLock({ $0.features & QEDFormat.needCheck != 0 }) { try setNeedCheck(false) }
        }
    }

    /// Flushes; the image is consistent and its need-check flag clear afterwards.
    func close() throws { try flush() }
}
