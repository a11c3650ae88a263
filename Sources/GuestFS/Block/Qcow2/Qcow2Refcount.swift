/// Reference counts of host clusters (qcow2 spec, "Host cluster management").
///
/// Read-only for now: enough for `check` and `info` to ask how often a cluster is used. The table
/// and its blocks are read on demand through a table cache, so opening a large image costs nothing.
final class Qcow2Refcount: Sendable {
    let geometry: Qcow2Geometry
    /// refcount_bits = 1 << refcount_order (qcow2 spec, "Header", refcount_order).
    let refcountBits: Int
    let tableOffset: UInt64
    /// Entries in the refcount table.
    let tableEntries: Int
    let fileSize: UInt64
    private let cache: Qcow2TableCache
    private let corruption: Qcow2CorruptionReporter

    /// Refcount blocks (and table clusters) kept in memory.
    static let cacheBytes = 1 << 20

    /// Checks the table's place in the file (QEMU's qcow2_validate_table) before anything is read.
    init(header h: Qcow2Header, geometry: Qcow2Geometry, fileSize: UInt64, corruption: Qcow2CorruptionReporter,
         readMetadata: @escaping @Sendable (UInt64, UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let clusterSize = UInt64(geometry.clusterSize)
        let bytes = UInt64(h.refcountTableClusters) * clusterSize
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
        guard h.refcountTableOffset <= fileSize, fileSize - h.refcountTableOffset >= bytes else {
            throw bad("table of \(bytes) bytes at 0x\(hex(h.refcountTableOffset)) runs past the end of the file (0x\(hex(fileSize)))")
        }
        self.geometry = geometry
        self.refcountBits = 1 << Int(h.refcountOrder)
        self.tableOffset = h.refcountTableOffset
        self.tableEntries = Int(bytes / 8)
        self.fileSize = fileSize
        self.corruption = corruption
        self.cache = Qcow2TableCache(entryBytes: geometry.clusterSize, capacityBytes: Self.cacheBytes, loader: readMetadata)
    }

    /// Entries in one refcount block: cluster_size * 8 / refcount_bits.
    var blockEntries: Int { geometry.clusterSize * 8 / refcountBits }

    /// The refcount of the host cluster holding `hostOffset` (0 when its block is not allocated).
    func refcount(ofHostOffset hostOffset: UInt64) throws -> UInt64 {
        let cluster = hostOffset >> UInt64(geometry.clusterBits)
        let tableIndex = cluster / UInt64(blockEntries)
        let blockIndex = Int(cluster % UInt64(blockEntries))
        guard tableIndex < UInt64(tableEntries) else { return 0 }
        let tableByte = Int(tableIndex) * 8
        let clusterSize = geometry.clusterSize
        let tableCluster = tableOffset + UInt64(tableByte / clusterSize * clusterSize)
        let entry = try cache.withTable(at: tableCluster) { Qcow2Bytes.u64($0, tableByte % clusterSize) }
        let block = entry & Qcow2.offsetMask
        if block == 0 { return 0 }
        guard geometry.isClusterAligned(block), block >= UInt64(clusterSize),
              block <= fileSize, fileSize - block >= UInt64(clusterSize) else {
            throw corruption.signalCorruption(
                "refcount block offset 0x\(hex(block)) (refcount table index 0x\(hex(tableIndex))) is unaligned, in the header or past the end of the file",
                structure: "refcount table entry", offset: tableOffset + UInt64(tableByte), size: 8)
        }
        return try cache.withTable(at: block) { Self.entry(blockIndex, bits: refcountBits, in: $0) }
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
}
