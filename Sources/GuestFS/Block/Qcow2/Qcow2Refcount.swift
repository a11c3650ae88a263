import Synchronization

/// Reference counts of host clusters (qcow2 spec, "Host cluster management").
///
/// The refcount table is held in memory (it is bounded by `Qcow2.maxRefcountTableBytes`) and read
/// on first use, so opening a large image costs nothing; refcount blocks go through a table cache.
/// Reading is safe from any thread. Changing counts (`Qcow2Refcount+Allocation.swift`) is for the
/// one writer at a time that `Qcow2Writer` admits: changed blocks stay dirty in the cache until
/// the writer flushes them, before the L2 tables that rely on them.
final class Qcow2Refcount: Sendable {
    let geometry: Qcow2Geometry
    /// refcount_bits = 1 << refcount_order (qcow2 spec, "Header", refcount_order).
    let refcountBits: Int
    /// The largest count an entry holds: 2^refcount_bits - 1.
    let maxRefcount: UInt64
    let cache: Qcow2TableCache
    let corruption: Qcow2CorruptionReporter
    let currentFileSize: @Sendable () -> UInt64
    let readMetadata: @Sendable (UInt64, UnsafeMutableRawBufferPointer) throws -> Void

    /// The refcount table: where it is, and its entries once read.
    struct TableState {
        var offset: UInt64
        var clusters: UInt32
        var entries: [UInt64]?
        /// Where the search for free clusters starts (QEMU's free_cluster_index).
        var freeClusterHint: UInt64 = 0
    }
    let table: Mutex<TableState>
    /// Bumped whenever the refcount table's entries change (a new block, a moved table), so the
    /// writer's overlap check knows when its index of refcount block offsets is stale.
    let tableGeneration = Atomic<UInt64>(0)

    /// Refcount blocks kept in memory.
    static let cacheBytes = 1 << 20

    /// Checks the table's place in the file (QEMU's qcow2_validate_table) before anything is read.
    init(header h: Qcow2Header, geometry: Qcow2Geometry, fileSize: @escaping @Sendable () -> UInt64,
         corruption: Qcow2CorruptionReporter,
         readMetadata: @escaping @Sendable (UInt64, UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let clusterSize = UInt64(geometry.clusterSize)
        let bytes = UInt64(h.refcountTableClusters) * clusterSize
        let size = fileSize()
        func bad(_ reason: String) -> ImageError {
            ImageError(offset: h.refcountTableOffset, structure: "refcount table", reason: reason)
        }
        guard h.refcountOrder <= Qcow2.maxRefcountOrder else { throw bad("refcount_order \(h.refcountOrder) is above 6") }
        guard bytes <= UInt64(Qcow2.maxRefcountTableBytes) else {
            throw bad("\(h.refcountTableClusters) clusters (\(bytes) bytes) exceed the limit of \(Qcow2.maxRefcountTableBytes) bytes")
        }
        guard h.refcountTableClusters > 0 else { throw bad("refcount table is empty") }
        guard geometry.isClusterAligned(h.refcountTableOffset) else {
            throw bad("offset 0x\(hex(h.refcountTableOffset)) is not cluster-aligned")
        }
        guard h.refcountTableOffset >= clusterSize else { throw bad("refcount table points into the image header") }
        guard h.refcountTableOffset <= size, size - h.refcountTableOffset >= bytes else {
            throw bad("table of \(bytes) bytes at 0x\(hex(h.refcountTableOffset)) runs past the end of the file (0x\(hex(size)))")
        }
        self.geometry = geometry
        self.refcountBits = 1 << Int(h.refcountOrder)
        self.maxRefcount = refcountBits == 64 ? .max : (UInt64(1) << UInt64(refcountBits)) - 1
        self.table = Mutex(TableState(offset: h.refcountTableOffset, clusters: h.refcountTableClusters))
        self.currentFileSize = fileSize
        self.corruption = corruption
        self.readMetadata = readMetadata
        self.cache = Qcow2TableCache(entryBytes: geometry.clusterSize, capacityBytes: Self.cacheBytes, loader: readMetadata)
    }

    /// Entries in one refcount block: cluster_size * 8 / refcount_bits.
    var blockEntries: Int { geometry.clusterSize * 8 / refcountBits }

    /// The refcount table's entries, read from the file on first use.
    func tableEntries() throws -> (offset: UInt64, entries: [UInt64]) {
        if let (offset, entries) = table.withLock({ s in s.entries.map { (s.offset, $0) } }) { return (offset, entries) }
        let (offset, clusters) = table.withLock { ($0.offset, $0.clusters) }
        var raw = [UInt8](repeating: 0, count: Int(clusters) * geometry.clusterSize)
        try raw.withUnsafeMutableBytes { try readMetadata(offset, $0) }
        let entries = raw.withUnsafeBytes { b in (0..<(b.count / 8)).map { Qcow2Bytes.u64(b, $0 * 8) } }
        return table.withLock { s in
            if s.entries == nil, s.offset == offset { s.entries = entries }
            return (s.offset, s.entries ?? entries)
        }
    }

    /// The refcount block covering `cluster`: its host offset, or nil when it is not allocated
    /// (or lies past the table). A bad table entry is a corruption report.
    func block(forCluster cluster: UInt64) throws -> UInt64? {
        let tableIndex = cluster / UInt64(blockEntries)
        let (offset, entries) = try tableEntries()
        guard tableIndex < UInt64(entries.count) else { return nil }
        let block = entries[Int(tableIndex)] & Qcow2.offsetMask
        if block == 0 { return nil }
        let clusterSize = UInt64(geometry.clusterSize)
        let fileSize = currentFileSize()
        guard geometry.isClusterAligned(block), block >= clusterSize, block <= fileSize, fileSize - block >= clusterSize else {
            throw corruption.signalCorruption(
                "refcount block offset 0x\(hex(block)) (refcount table index 0x\(hex(tableIndex))) is unaligned, in the header or past the end of the file",
                structure: "refcount table entry", offset: offset + tableIndex * 8, size: 8)
        }
        return block
    }

    /// How many times the host cluster at index `cluster` is referenced (0 when its block is not allocated).
    func refcount(ofCluster cluster: UInt64) throws -> UInt64 {
        guard let block = try block(forCluster: cluster) else { return 0 }
        let index = Int(cluster % UInt64(blockEntries))
        return try cache.withTable(at: block) { Self.entry(index, bits: refcountBits, in: $0) }
    }

    /// The refcount of the host cluster holding `hostOffset` (0 when its block is not allocated).
    func refcount(ofHostOffset hostOffset: UInt64) throws -> UInt64 {
        try refcount(ofCluster: hostOffset >> UInt64(geometry.clusterBits))
    }

    /// Entry `index` of a refcount block (qcow2 spec, "Refcount block entry": sub-byte widths count
    /// from the least significant bit; wider ones are big-endian).
    static func entry(_ index: Int, bits: Int, in block: UnsafeRawBufferPointer) -> UInt64 {
        if bits < 8 {
            let bit = index * bits
            return UInt64((block[bit / 8] >> UInt8(bit % 8)) & UInt8((1 << bits) - 1))
        }
        let bytes = bits / 8
        var value: UInt64 = 0
        for i in 0..<bytes { value = value << 8 | UInt64(block[index * bytes + i]) }
        return value
    }

    /// Stores `value` (already checked against the width) as entry `index` of a refcount block.
    static func setEntry(_ index: Int, bits: Int, to value: UInt64, in block: UnsafeMutableRawBufferPointer) {
        if bits < 8 {
            let bit = index * bits
            let mask = UInt8((1 << bits) - 1) << UInt8(bit % 8)
            block[bit / 8] = (block[bit / 8] & ~mask) | (UInt8(truncatingIfNeeded: value) << UInt8(bit % 8)) & mask
            return
        }
        let bytes = bits / 8
        for i in 0..<bytes {
            block[index * bytes + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (bytes - 1 - i)))
        }
    }
}
