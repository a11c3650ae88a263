import Synchronization
import SystemPackage

/// A QED image, read-only or writable (`QEDImage+Write.swift`): the L1 table's reachable part loaded at open (bounded by
/// `QEDFormat.maxL1Entries`), L2 tables read in slices into a bounded cache (a table can be up
/// to 1 GiB), unallocated clusters from the backing file, zero clusters as zeros.
///
/// QED_F_NEED_CHECK (an image not closed cleanly) is no reason to refuse a read-only open:
/// QEMU's bdrv_qed_do_open runs qed_check only when it may fix the image (read-write opens),
/// and otherwise reads the tables as they are, since nothing is written. So do we: every offset
/// is still checked on use, so a table left inconsistent fails the read that meets it, no more.
final class QEDImage: BlockDevice {
    let file: any BlockDevice
    let metadata: QEDMetadata
    let size: UInt64
    let isWritable: Bool
    var displayName: String { file.displayName }
    let backing: (any BlockDevice)?
    /// The L1 table's reachable part and the writer's allocation state.
    let state: Mutex<QEDWriteState>
    /// Serializes writers; readers never take it.
    let writeLock = BlockingLock()
    let l2Slices: Qcow2TableCache
    let sliceBytes: UInt64

    static let l1Structure = "QED L1 table"
    static let l2Structure = "QED L2 table"
    /// One L2 slice (a whole table when it is smaller), and the slice cache's budget.
    static let maxSliceBytes: UInt64 = 64 << 10
    static let l2CacheBytes = 4 << 20

    init(file: any BlockDevice, options: ImageOpenOptions,
         openBacking: (_ path: String, _ format: ImageFormat?) throws -> any BlockDevice) throws {
        let meta = try QEDMetadata.read(from: file)
        let h = meta.header
        self.file = file
        metadata = meta
        size = h.imageSize
        let l1 = try file.readTable(at: h.l1TableOffset, count: meta.l1Entries, entryBytes: 8) { $0.u64($1) }
        state = Mutex(QEDWriteState(l1: l1, features: h.features))
        isWritable = options.writable
        sliceBytes = min(h.tableBytes, Self.maxSliceBytes)
        l2Slices = Qcow2TableCache(entryBytes: Int(sliceBytes), capacityBytes: Self.l2CacheBytes) { offset, buffer in
            try file.readZeroPaddedPast(into: buffer, at: offset)
        }
        if let name = meta.backingFile {
            let resolved = ImageOpener.resolve(name, relativeTo: file.displayName)
            // QED_F_BACKING_FORMAT_NO_PROBE: the backing file is raw; otherwise QEMU probes it.
            backing = try ImageOpener.openNamedBacking(resolved, image: file, format: .qed,
                                                       backingFormat: meta.backingFormat == nil ? nil : .raw,
                                                       options: options, openBacking: openBacking)
        } else {
            backing = nil
        }
        if options.writable { try openForWriting() }
    }

    deinit { try? close() }

    /// The file size rounded down to a cluster, as it is now (it grows while writing).
    var currentFileSize: UInt64 { file.size / UInt64(metadata.header.clusterSize) * UInt64(metadata.header.clusterSize) }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        try ClusterRead.read(into: buffer, at: offset, clusterSize: UInt64(metadata.header.clusterSize), file: file, backing: backing,
                             map: { try source(ofCluster: $0) })
    }

    /// The L2 offset of L1 entry `index`, checked as qed_find_cluster checks it; nil when unallocated.
    func l2Table(_ index: Int) throws -> UInt64? {
        let l2 = state.withLock { $0.l1[index] }
        if l2 == QEDFormat.unallocated { return nil }
        guard metadata.header.isValidTable(l2, fileSize: currentFileSize) else {
            throw ImageError(path: file.displayName, offset: metadata.header.l1TableOffset + UInt64(index) * 8, structure: Self.l1Structure,
                             reason: "entry \(index) points at an invalid L2 table offset 0x\(String(l2, radix: 16))")
        }
        return l2
    }

    /// Entry `index` of the L2 table at `l2` (read through the slice cache).
    func l2Entry(_ l2: UInt64, _ index: UInt64) throws -> UInt64 {
        let byte = index * 8
        let slice = l2 + byte / sliceBytes * sliceBytes
        let within = Int(byte % sliceBytes)
        return try l2Slices.withTable(at: slice) { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: within, as: UInt64.self)) }
    }

    /// qed_find_cluster for one cluster: unallocated in L1 or L2 reads the backing file, 1 is a
    /// zero cluster, anything else must be a valid cluster offset.
    func source(ofCluster cluster: UInt64) throws -> ClusterRead.Source {
        let h = metadata.header
        let l1Index = Int(cluster / h.tableEntries)
        guard l1Index < metadata.l1Entries, let l2 = try l2Table(l1Index) else { return .backing }
        let index = cluster % h.tableEntries
        let entry = try l2Entry(l2, index)
        switch entry {
        case QEDFormat.unallocated: return .backing
        case QEDFormat.zeroCluster: return .zero
        default:
            guard h.isValidCluster(entry, fileSize: currentFileSize) else {
                throw ImageError(path: file.displayName, offset: l2 + index * 8, structure: Self.l2Structure,
                                 reason: "entry \(index) points at an invalid cluster offset 0x\(String(entry, radix: 16))")
            }
            return .data(entry)
        }
    }
}
