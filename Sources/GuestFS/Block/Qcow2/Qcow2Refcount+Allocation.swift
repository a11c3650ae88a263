import Synchronization
/// Where the refcount code writes metadata: the writer, which runs the overlap check before each
/// write (QEMU's qcow2_pre_write_overlap_check) and knows how to make writes durable.
protocol Qcow2MetadataSink: AnyObject {
    /// Writes metadata bytes of kind `structure` at `offset` (the file grows when needed).
    func writeMetadata(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, structure: Qcow2MetadataStructure) throws
    /// Makes everything written so far durable (fdatasync).
    func barrier() throws
    /// Points the header at a new refcount table, durably.
    func refcountTableMoved(offset: UInt64, clusters: UInt32) throws
}

/// The kinds of metadata the overlap check tells apart (QEMU's QCow2MetadataOverlap).
enum Qcow2MetadataStructure: String, Sendable {
    case header = "qcow2 header"
    case activeL1 = "active L1 table"
    case activeL2 = "active L2 table"
    case refcountTable = "refcount table"
    case refcountBlock = "refcount block"
    case snapshotTable = "snapshot table"
    case inactiveL1 = "inactive L1 table"
    /// The LUKS header of an encrypted image (never written by us; QEMU does not check it).
    case encryptionHeader = "LUKS encryption header"
    /// Guest data: may land on no metadata at all.
    case data = "guest data"
}

/// Changing reference counts: allocation of clusters, new refcount blocks and a growing refcount
/// table (qcow2 spec, "Host cluster management"; QEMU's qcow2-refcount.c, alloc_clusters_noref,
/// update_refcount and alloc_refcount_block). Only the writer calls these, one call at a time.
///
/// Ordering: a new refcount block is written and made durable before the table entry that names
/// it; a new table (with the blocks that count it) is durable before the header names it; the old
/// table is freed only after that. A crash at any point leaks clusters at worst.
extension Qcow2Refcount {
    /// Takes one reference to each of `count` contiguous free clusters, found from the free-cluster
    /// hint, and returns the index of the first. Blocks and table grow as needed.
    func allocate(count: Int, sink: Qcow2MetadataSink) throws -> UInt64 {
        precondition(count > 0)
        var start = table.withLock { $0.freeClusterHint }
        var blocksMade = 0
        search: while true {
            var run = 0
            var cluster = start
            while run < count {
                try checkScanBound(cluster, count: count)
                if try refcount(ofCluster: cluster) == 0 {
                    run += 1
                } else {
                    run = 0
                    start = cluster + 1
                }
                cluster += 1
            }
            // Every cluster of the run needs a block; making one may use a cluster of the run, so
            // the search starts again (each block is made once, so this ends).
            var c = start
            while c < start + UInt64(count) {
                if try block(forCluster: c) == nil {
                    // A run needs at most a few new blocks; many more means a bug: stop, not fill the disk.
                    blocksMade += 1
                    guard blocksMade <= 8 + count / blockEntries else {
                        throw ImageError(offset: c << UInt64(geometry.clusterBits), structure: "refcount block",
                                         reason: "cannot place \(count) clusters: refcount blocks keep splitting the free space",
                                         errno: .noSpace)
                    }
                    try ensureBlock(tableIndex: c / UInt64(blockEntries), sink: sink)
                    continue search
                }
                c = (c / UInt64(blockEntries) + 1) * UInt64(blockEntries)
            }
            try add(1, toClusters: start..<(start + UInt64(count)))
            table.withLock { $0.freeClusterHint = start + UInt64(count) }
            return start
        }
    }

    /// How far past the end of the image file a search for free clusters may go. Clusters past
    /// the end hold nothing yet; a few are counted while a write's clusters are allocated before
    /// their data lands, never this many. Refcounts that claim more (table entries sharing one
    /// block full of ones, say) are damage, and a search over them could run for 2^35 clusters.
    static let scanSlackClusters: UInt64 = 1 << 16

    /// Throws once a free-cluster search reaches `cluster` that far past the end of the file.
    private func checkScanBound(_ cluster: UInt64, count: Int) throws {
        let fileClusters = currentFileSize() >> UInt64(geometry.clusterBits)
        let limit = fileClusters.saturatingAdd(Self.scanSlackClusters).saturatingAdd(UInt64(count))
        guard cluster <= limit else {
            throw ImageError(offset: fileClusters << UInt64(geometry.clusterBits), structure: "refcount table",
                             reason: "refcounts claim clusters more than \(Self.scanSlackClusters) past the end of the image file; " +
                                     "nothing was written (repair with qemu-img check -r all)", errno: .ioError)
        }
    }

    /// Adds `delta` to the refcount of every cluster in `range`, in the cached blocks (dirty until
    /// the writer flushes them). Every cluster must have a block. Underflow and overflow are
    /// corruption: they mean the metadata's counts were wrong.
    func add(_ delta: Int64, toClusters range: Range<UInt64>) throws {
        var cluster = range.lowerBound
        let perBlock = UInt64(blockEntries)
        while cluster < range.upperBound {
            let blockEnd = min(range.upperBound, (cluster / perBlock + 1) * perBlock)
            guard let block = try block(forCluster: cluster) else {
                preconditionFailure("refcount change for cluster \(cluster) without a refcount block")
            }
            let first = cluster
            try cache.update(at: block) { bytes in
                for c in first..<blockEnd {
                    let index = Int(c % perBlock)
                    let old = Self.entry(index, bits: refcountBits, in: UnsafeRawBufferPointer(bytes))
                    let new: UInt64
                    if delta < 0 {
                        guard old >= UInt64(-delta) else {
                            throw corruption.signalCorruption(
                                "refcount of cluster 0x\(hex(c)) would drop below zero (it is \(old))",
                                structure: "refcount block", offset: block, size: UInt64(geometry.clusterSize))
                        }
                        new = old - UInt64(-delta)
                    } else {
                        guard maxRefcount - old >= UInt64(delta) else {
                            throw ImageError(offset: c << UInt64(geometry.clusterBits), structure: "refcount block",
                                             reason: "refcount of cluster 0x\(hex(c)) would exceed \(maxRefcount) (refcount_bits \(refcountBits))",
                                             errno: .noSpace)
                        }
                        new = old + UInt64(delta)
                    }
                    Self.setEntry(index, bits: refcountBits, to: new, in: bytes)
                }
            }
            if delta < 0 {
                table.withLock { $0.freeClusterHint = min($0.freeClusterHint, first) }
            }
            cluster = blockEnd
        }
    }

    /// Sets the refcount of `cluster` to `value` (repair), making a block for it when it has none.
    func set(cluster: UInt64, to value: UInt64, sink: Qcow2MetadataSink) throws {
        if try block(forCluster: cluster) == nil {
            if value == 0 { return }
            try ensureBlock(tableIndex: cluster / UInt64(blockEntries), sink: sink)
        }
        let old = try refcount(ofCluster: cluster)
        if old == value { return }
        try add(value > old ? Int64(value - old) : -Int64(old - value), toClusters: cluster..<(cluster + 1))
    }

    /// Makes the refcount block of range `tableIndex` (QEMU's alloc_refcount_block). It goes into
    /// the first free cluster: counting itself when that cluster is in its own range, else counted
    /// by the block of the cluster's range (made durable before the table names the new block).
    private func ensureBlock(tableIndex: UInt64, sink: Qcow2MetadataSink) throws {
        let perBlock = UInt64(blockEntries)
        while try block(forCluster: tableIndex * perBlock) == nil {
            if tableIndex >= UInt64(try tableEntries().entries.count) {
                try growTable(toCover: tableIndex, sink: sink)
                continue
            }
            var x = table.withLock { $0.freeClusterHint }
            while try refcount(ofCluster: x) != 0 { x += 1; try checkScanBound(x, count: 1) }
            let xHasBlock = try block(forCluster: x) != nil
            if x / perBlock == tableIndex || !xHasBlock {
                // Self-describing: the block of x's range, in x (maybe the one wanted).
                try createBlock(forFreeCluster: x, sink: sink)
                continue
            }
            try add(1, toClusters: x..<(x + 1))
            try cache.flush(write: { offset, bytes in try sink.writeMetadata(bytes, at: offset, structure: .refcountBlock) },
                            barrier: { try sink.barrier() })
            try sink.barrier()
            let zeros = [UInt8](repeating: 0, count: geometry.clusterSize)
            let blockOffset = x << UInt64(geometry.clusterBits)
            cache.drop(blockOffset)
            try zeros.withUnsafeBytes { try sink.writeMetadata($0, at: blockOffset, structure: .refcountBlock) }
            try sink.barrier()
            try setTableEntry(Int(tableIndex), blockOffset, sink: sink)
        }
    }

    /// A new block for the range of the free `cluster`, stored in that cluster and counting itself.
    private func createBlock(forFreeCluster cluster: UInt64, sink: Qcow2MetadataSink) throws {
        let tableIndex = cluster / UInt64(blockEntries)
        let (_, entries) = try tableEntries()
        if tableIndex >= UInt64(entries.count) {
            try growTable(toCover: tableIndex, sink: sink)
            return
        }
        var bytes = [UInt8](repeating: 0, count: geometry.clusterSize)
        bytes.withUnsafeMutableBytes { Self.setEntry(Int(cluster % UInt64(blockEntries)), bits: refcountBits, to: 1, in: $0) }
        let blockOffset = cluster << UInt64(geometry.clusterBits)
        cache.drop(blockOffset)
        try bytes.withUnsafeBytes { try sink.writeMetadata($0, at: blockOffset, structure: .refcountBlock) }
        try sink.barrier()
        try setTableEntry(Int(tableIndex), blockOffset, sink: sink)
    }

    /// Writes refcount table entry `index` durably, then records it in memory.
    private func setTableEntry(_ index: Int, _ blockOffset: UInt64, sink: Qcow2MetadataSink) throws {
        let offset = table.withLock { $0.offset }
        var be = blockOffset.bigEndian
        try withUnsafeBytes(of: &be) { try sink.writeMetadata($0, at: offset + UInt64(index * 8), structure: .refcountTable) }
        try sink.barrier()
        table.withLock { $0.entries?[index] = blockOffset }
        tableGeneration.add(1, ordering: .releasing)
    }

    /// Replaces the refcount table with a larger one that covers block `tableIndex`, placed at the
    /// end of the file together with the new blocks that count the table and themselves
    /// (QEMU's qcow2_refcount_area).
    private func growTable(toCover tableIndex: UInt64, sink: Qcow2MetadataSink) throws {
        let (oldOffset, old) = try tableEntries()
        let oldClusters = table.withLock { $0.clusters }
        let cs = UInt64(geometry.clusterSize), perBlock = UInt64(blockEntries)
        // The new area starts past the end of the file and past every counted cluster we know of.
        var areaStart = max((currentFileSize() + cs - 1) / cs, table.withLock { $0.freeClusterHint })
        while try refcount(ofCluster: areaStart) != 0 { areaStart += 1; try checkScanBound(areaStart, count: 1) }
        func missing(_ i: UInt64) -> Bool { i >= UInt64(old.count) || old[Int(i)] & Qcow2.offsetMask == 0 }

        var blocks: [UInt64] = []     // table indices that get a new block, in order
        var tableClusters = UInt64(1)
        while true {
            let end = areaStart + UInt64(blocks.count) + tableClusters
            var needed = Set<UInt64>()
            for i in (areaStart / perBlock)...((end - 1) / perBlock) where missing(i) { needed.insert(i) }
            if missing(tableIndex) { needed.insert(tableIndex) }
            let highest = max(needed.max() ?? 0, tableIndex)
            let entries = max(UInt64(old.count) * 2, highest + 1)
            let clusters = (entries * 8 + cs - 1) / cs
            if needed.count == blocks.count, clusters <= tableClusters { break }
            blocks = needed.sorted()
            tableClusters = max(tableClusters, clusters)
        }
        guard tableClusters * cs <= UInt64(Qcow2.maxRefcountTableBytes) else {
            throw ImageError(offset: oldOffset, structure: "refcount table",
                             reason: "the image would need a refcount table larger than \(Qcow2.maxRefcountTableBytes) bytes",
                             errno: .noSpace)
        }
        let tableStart = areaStart + UInt64(blocks.count)
        let areaEnd = tableStart + tableClusters

        // The new blocks, each counting the clusters of the new area in its range.
        var newEntries = old + [UInt64](repeating: 0, count: Int(tableClusters * cs / 8) - old.count)
        for (n, index) in blocks.enumerated() {
            var bytes = [UInt8](repeating: 0, count: Int(cs))
            let lower = max(areaStart, index * perBlock), upper = min(areaEnd, (index + 1) * perBlock)
            if lower < upper {
                bytes.withUnsafeMutableBytes { b in
                    for c in lower..<upper { Self.setEntry(Int(c % perBlock), bits: refcountBits, to: 1, in: b) }
                }
            }
            let blockOffset = (areaStart + UInt64(n)) * cs
            cache.drop(blockOffset)
            try bytes.withUnsafeBytes { try sink.writeMetadata($0, at: blockOffset, structure: .refcountBlock) }
            newEntries[Int(index)] = blockOffset
        }
        // Clusters of the area that fall into ranges whose blocks already exist.
        var c = areaStart
        while c < areaEnd {
            let upper = min(areaEnd, (c / perBlock + 1) * perBlock)
            if !missing(c / perBlock) { try add(1, toClusters: c..<upper) }
            c = upper
        }
        try cache.flush(write: { offset, bytes in try sink.writeMetadata(bytes, at: offset, structure: .refcountBlock) },
                        barrier: { try sink.barrier() })
        var raw = [UInt8](repeating: 0, count: Int(tableClusters * cs))
        raw.withUnsafeMutableBytes { b in
            for (i, e) in newEntries.enumerated() { b.storeBytes(of: e.bigEndian, toByteOffset: i * 8, as: UInt64.self) }
        }
        // Written as a table at a place no table is yet: the overlap check sees the old one.
        try raw.withUnsafeBytes { try sink.writeMetadata($0, at: tableStart * cs, structure: .refcountTable) }
        try sink.barrier()
        try sink.refcountTableMoved(offset: tableStart * cs, clusters: UInt32(tableClusters))
        table.withLock { s in
            s.offset = tableStart * cs
            s.clusters = UInt32(tableClusters)
            s.entries = newEntries
            s.freeClusterHint = max(s.freeClusterHint, areaEnd)
        }
        tableGeneration.add(1, ordering: .releasing)
        // The old table is no longer named by the header: free it.
        let oldFirst = oldOffset / cs
        try add(-1, toClusters: oldFirst..<(oldFirst + UInt64(oldClusters)))
    }
}
