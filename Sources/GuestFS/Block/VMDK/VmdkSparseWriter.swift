import Synchronization
import SystemPackage

/// Writing one hosted sparse extent (VMware "Virtual Disk Format 1.1", "Grain Directory and
/// Grain Tables"), as QEMU's vmdk.c get_cluster_offset / get_whole_cluster / vmdk_L2update do:
/// a new grain is appended at the end of the file (QEMU's next_cluster_sector, the file size
/// rounded up to a grain), written whole, and only then named by its grain table entry, and
/// after that by the same entry of the redundant grain table when the header has one.
///
/// Crash safety: entries change in the grain-table cache only (`gtCache` of the extent, which
/// readers use, and `rgtCache` for the redundant tables); `flush` syncs the grains first, then
/// writes the grain tables, syncs, then the redundant tables, syncs (QEMU writes both tables
/// right after each grain without a sync between data and table). A crash before that leaves
/// grains no entry names: leaked space, which `qemu-img check` does not look for in VMDK.
///
/// Grain tables are never allocated: QEMU-created and VMware-created sparse extents have every
/// table in place, and QEMU fails a write whose grain directory entry is 0; so do we.
final class VmdkSparseWriter: Sendable {
    let extent: VmdkSparseExtent
    let file: RawImage
    /// The redundant grain directory, when the header's flag says there is one.
    private let rgd: [UInt32]?
    private let rgtCache: Qcow2TableCache?
    /// The sector the next grain goes to.
    private let nextSector: Mutex<UInt64>
    /// First byte past the metadata (header, descriptor, directories, tables): grain data
    /// must lie at or after it, or a data write could overwrite a table.
    let dataStart: UInt64

    /// Grain table caches hold dirty tables until flush; past this many a write flushes them.
    static let maxDirtyTables = 256
    /// QEMU's VMDK_EXTENT_MAX_SECTORS: grain table entries are 32-bit sector numbers.
    static let maxSectors: UInt64 = 1 << 32

    /// Checks that `extent` can be written (QEMU's vmdk_open_vmdk4 checks for writable opens,
    /// and ours: every grain table of both directories inside the metadata area before the
    /// first grain), and loads the redundant directory.
    init(extent: VmdkSparseExtent, file: RawImage) throws {
        self.extent = extent
        self.file = file
        let h = extent.header
        func refuse(_ at: UInt64, _ reason: String, _ errno: Errno = .notSupported) -> ImageError {
            ImageError(path: file.displayName, offset: at, structure: "VMDK header", reason: reason, errno: errno)
        }
        guard !h.compressed else { throw refuse(77, VmdkImage.streamRefusal, .readOnlyFileSystem) }
        guard h.version != 3 else { throw refuse(4, "VMDK version 3 must be read only", .readOnlyFileSystem) }
        let (start, o1) = h.grainOffset.multipliedReportingOverflow(by: VmdkFormat.sectorSize)
        guard !o1, start >= VmdkFormat.sectorSize, start <= file.size else {
            throw refuse(64, "grain data offset (sector \(h.grainOffset)) lies outside the file: not written")
        }
        dataStart = start
        let tableBytes = UInt64(h.gtesPerGT) * 4
        func checkTables(_ dir: [UInt32], at dirField: UInt64, _ name: String) throws {
            for (i, sector) in dir.enumerated() where sector != 0 {
                let at = UInt64(sector) * VmdkFormat.sectorSize
                guard at >= VmdkFormat.sectorSize, at + tableBytes <= start else {
                    throw ImageError(path: file.displayName, offset: dirField + UInt64(i) * 4, structure: "VMDK \(name)",
                                     reason: "entry \(i) puts a grain table at sector \(sector), outside the metadata before the first grain (sector \(h.grainOffset)): not written; convert the image with qemu-img convert",
                                     errno: .ioError)
                }
            }
        }
        try checkTables(extent.gd, at: h.gdOffset * VmdkFormat.sectorSize, "grain directory")
        if h.flags & VmdkFormat.flagRedundantGD != 0, h.redundantGDOffset != 0 {
            let (at, o2) = h.redundantGDOffset.multipliedReportingOverflow(by: VmdkFormat.sectorSize)
            let bytes = extent.gd.count * 4
            guard !o2, at.saturatingAdd(UInt64(bytes)) <= start else {
                throw refuse(48, "redundant grain directory at sector \(h.redundantGDOffset) lies outside the metadata: not written", .ioError)
            }
            let raw = LittleEndianBytes(try file.readBytes(at: at, count: bytes))
            let dir = (0 ..< extent.gd.count).map { raw.u32($0 * 4) }
            try checkTables(dir, at: at, "redundant grain directory")
            rgd = dir
            let cache = Qcow2TableCache(entryBytes: Int(tableBytes), capacityBytes: VmdkSparseExtent.tableCacheBytes / 2) { offset, into in
                try file.readPastEnd(into: into, at: offset)
            }
            // The redundant tables go out after the primary ones are durable.
            cache.setDependency(extent.gtCache)
            rgtCache = cache
        } else {
            rgd = nil
            rgtCache = nil
        }
        let sectors = (file.size + VmdkFormat.sectorSize - 1) / VmdkFormat.sectorSize
        nextSector = Mutex((sectors + h.granularity - 1) / h.granularity * h.granularity)
    }

    /// Where the grain table entry of the grain holding extent byte `offset` is, in both tables.
    private func slot(_ offset: UInt64) throws -> (gt: UInt64, rgt: UInt64?, index: Int) {
        let gdIndex = Int(offset / extent.gtCoverage)
        let index = Int((offset % extent.gtCoverage) / extent.grainBytes)
        guard gdIndex < extent.gd.count, extent.gd[gdIndex] != 0 else {
            throw ImageError(path: file.displayName, offset: extent.header.gdOffset * VmdkFormat.sectorSize + UInt64(gdIndex) * 4,
                             structure: "VMDK grain directory", reason: "no grain table for extent byte \(offset) (grain directory entry is 0)",
                             errno: .ioError)
        }
        let gt = UInt64(extent.gd[gdIndex]) * VmdkFormat.sectorSize
        let rgt = rgd.flatMap { $0[gdIndex] == 0 ? nil : UInt64($0[gdIndex]) * VmdkFormat.sectorSize }
        return (gt, rgt, index)
    }

    /// Points the entry of the grain at extent byte `offset` at `value` (a sector, or the
    /// zeroed-grain marker 1) in the caches; written at the next flush.
    func setEntry(_ offset: UInt64, _ value: UInt32) throws {
        let (gt, rgt, index) = try slot(offset)
        try extent.gtCache.update(at: gt) { LittleEndianBytes.put32(value, into: $0, at: index * 4) }
        if let rgt, let rgtCache { try rgtCache.update(at: rgt) { LittleEndianBytes.put32(value, into: $0, at: index * 4) } }
        if extent.gtCache.dirtyCount > Self.maxDirtyTables { try flush() }
    }

    /// Appends a grain holding `grain` (one grain's bytes: the caller's data over the parent's
    /// or zeros), then points the entry of extent byte `offset` at it.
    func allocate(_ offset: UInt64, grain: [UInt8]) throws {
        _ = try slot(offset)   // refuse before writing anything
        let sector = nextSector.withLock { $0 }
        guard sector + extent.header.granularity <= Self.maxSectors else {
            throw ImageError(path: file.displayName, offset: offset, structure: "VMDK grain table",
                             reason: "the extent file is too large for another grain (entries are 32-bit sector numbers)", errno: .noSpace)
        }
        try grain.withUnsafeBytes { try file.writeExtending($0, at: sector * VmdkFormat.sectorSize) }
        nextSector.withLock { $0 = sector + extent.header.granularity }
        extent.gtCache.setDependsOnFlush()
        try setEntry(offset, UInt32(sector))
    }

    /// Grains synced, then the grain tables, synced, then the redundant tables, synced.
    func flush() throws {
        let write: (UInt64, UnsafeRawBufferPointer) throws -> Void = { [file] offset, bytes in try file.write(bytes, at: offset) }
        let barrier: () throws -> Void = { [file] in try file.flush() }
        if let rgtCache {
            try rgtCache.flush(write: write, barrier: barrier)
        }
        try extent.gtCache.flush(write: write, barrier: barrier)
        try file.flush()
    }
}
