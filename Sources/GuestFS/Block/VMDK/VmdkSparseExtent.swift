/// One hosted sparse extent (spec, "Grain Directory and Grain Tables"): the header (or the
/// stream-optimized footer), the grain directory loaded whole (capped), grain tables in a
/// bounded cache, and decompressed grains in another. Safe to read from several threads.
final class VmdkSparseExtent: Sendable {
    let file: any BlockDevice
    let header: VmdkSparseHeader
    /// Bytes per grain, and guest bytes one grain table maps.
    let grainBytes: UInt64
    let gtCoverage: UInt64
    /// Bytes of the extent (capacity).
    let size: UInt64
    let gd: [UInt32]
    let gtCache: Qcow2TableCache
    private let grainCache: Qcow2TableCache?

    /// Where one grain's data lives.
    enum Grain: Equatable {
        case data(host: UInt64)
        case compressed(host: UInt64)
        case zero
        /// Not allocated here: the parent's data, or zeros.
        case unallocated
    }

    /// Cache budgets of one extent when it is alone; a descriptor with many extents divides
    /// `budgetBytes` between them (`cacheShare`), so that a 2 TiB twoGbMaxExtent disk stays
    /// within the memory limit however much of it is read.
    static let tableCacheBytes = 256 << 10, grainCacheBytes = 2 << 20, budgetBytes = 8 << 20

    /// Reads and validates the header of `file` (at 0, or the footer when the grain directory
    /// is at the end), then loads the grain directory. `cacheShare` is 1 over the number of
    /// extents sharing the budget.
    init(file: any BlockDevice, extents cacheShare: Int = 1) throws {
        self.file = file
        func fail(_ offset: UInt64, _ structure: String, _ reason: String) -> ImageError {
            ImageError(path: file.displayName, offset: offset, structure: structure, reason: reason, errno: .ioError)
        }
        var h: VmdkSparseHeader
        let first = try file.readBytes(at: 0, count: Int(min(file.size, 512)))
        do { h = try VmdkSparseHeader(first) } catch let e {
            throw fail(0, "VMDK header", e.reason)
        }
        if h.gdOffset == VmdkFormat.gdAtEnd {
            // Stream-optimized: footer marker, footer header, end-of-stream marker in the last 1536 bytes.
            guard file.size >= 1536 else { throw fail(0, "VMDK footer", "file too small for a footer") }
            let at = file.size - 1536
            let bytes = try file.readBytes(at: at, count: 1536)
            let b = LittleEndianBytes(bytes)
            guard b.u32(12) == VmdkFormat.markerFooter, b.u32(8) == 0, b.u64(1024) == 0, b.u32(1032) == 0,
                  b.u32(1036) == VmdkFormat.markerEndOfStream else {
                throw fail(at, "VMDK footer", "invalid footer markers")
            }
            do { h = try VmdkSparseHeader(Array(bytes[512..<1024])) } catch let e {
                throw fail(at + 512, "VMDK footer", e.reason)
            }
        }
        header = h
        guard h.version <= 3 else { throw fail(4, "VMDK header", "unsupported VMDK version \(h.version)") }
        guard h.gtesPerGT >= 1, h.gtesPerGT <= VmdkFormat.maxGTEsPerGT else {
            throw fail(44, "VMDK header", "\(h.gtesPerGT) grain table entries per table (1...\(VmdkFormat.maxGTEsPerGT))")
        }
        guard h.granularity >= 1, h.granularity <= VmdkFormat.maxGrainSectors, h.granularity & (h.granularity - 1) == 0 else {
            throw fail(20, "VMDK header", "grain of \(h.granularity) sectors is not a power of two up to \(VmdkFormat.maxGrainSectors)")
        }
        guard h.compressAlgorithm <= 1 else { throw fail(77, "VMDK header", "unknown compression algorithm \(h.compressAlgorithm)") }
        let (bytes, overflow) = h.capacity.multipliedReportingOverflow(by: VmdkFormat.sectorSize)
        guard !overflow, h.capacity < 1 << 32 else { throw fail(12, "VMDK header", "capacity of \(h.capacity) sectors is too large") }
        size = bytes
        grainBytes = h.granularity * VmdkFormat.sectorSize
        gtCoverage = grainBytes * UInt64(h.gtesPerGT)
        let entries = (size + gtCoverage - 1) / gtCoverage
        guard entries <= VmdkFormat.maxGDEntries else {
            throw fail(12, "VMDK header", "grain directory of \(entries) entries exceeds \(VmdkFormat.maxGDEntries)")
        }
        let (gdBytes, gdOverflow) = h.gdOffset.multipliedReportingOverflow(by: VmdkFormat.sectorSize)
        guard !gdOverflow, gdBytes.saturatingAdd(entries * 4) <= file.size else {
            throw fail(56, "VMDK header", "grain directory at sector \(h.gdOffset) runs past the end of the file")
        }
        let raw = try file.readBytes(at: gdBytes, count: Int(entries * 4))
        let le = LittleEndianBytes(raw)
        gd = (0..<Int(entries)).map { le.u32($0 * 4) }

        let tableBytes = Int(h.gtesPerGT) * 4
        let gtFile = file
        let share = max(1, cacheShare)
        gtCache = Qcow2TableCache(entryBytes: tableBytes, capacityBytes: min(Self.tableCacheBytes, Self.budgetBytes / 4 / share)) { offset, into in
            try gtFile.readPastEnd(into: into, at: offset)
        }
        if h.compressed {
            let grain = Int(grainBytes)
            let markers = h.hasMarkers
            grainCache = Qcow2TableCache(entryBytes: grain, capacityBytes: min(Self.grainCacheBytes, Self.budgetBytes / share)) { offset, into in
                try Self.inflateGrain(file: gtFile, at: offset, grainBytes: grain, markers: markers, into: into)
            }
        } else {
            grainCache = nil
        }
    }

    /// Where the grain holding extent byte `offset` lives.
    func grain(at offset: UInt64) throws -> Grain {
        let gdIndex = Int(offset / gtCoverage)
        guard gdIndex < gd.count else { throw ImageError(path: file.displayName, offset: offset, structure: "VMDK grain directory", reason: "offset outside the extent") }
        let gtSector = gd[gdIndex]
        if gtSector == 0 { return .unallocated }
        let gtHost = UInt64(gtSector) * VmdkFormat.sectorSize
        guard gtHost.saturatingAdd(UInt64(header.gtesPerGT) * 4) <= file.size else {
            throw ImageError(path: file.displayName, offset: header.gdOffset * VmdkFormat.sectorSize + UInt64(gdIndex) * 4,
                             structure: "VMDK grain directory entry", reason: "grain table at sector \(gtSector) lies past the end of the file")
        }
        let gtIndex = Int((offset % gtCoverage) / grainBytes)
        let entry = try gtCache.withTable(at: gtHost) { LittleEndianBytes(Array($0[gtIndex * 4 ..< gtIndex * 4 + 4])).u32(0) }
        if entry == 0 { return .unallocated }
        if entry == VmdkFormat.zeroedGTE, header.hasZeroedGrain { return .zero }
        let host = UInt64(entry) * VmdkFormat.sectorSize
        if header.compressed { return .compressed(host: host) }
        guard host < file.size else {
            throw ImageError(path: file.displayName, offset: gtHost + UInt64(gtIndex) * 4, structure: "VMDK grain table entry",
                             reason: "grain at sector \(entry) lies past the end of the file")
        }
        return .data(host: host)
    }

    /// Copies `buffer.count` bytes of the compressed grain at `host`, from byte `within` of it.
    func readCompressed(host: UInt64, within: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard let grainCache else { return }
        try grainCache.withTable(at: host) { grain in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: grain[within ..< within + buffer.count]))
        }
    }

    /// Inflates the whole compressed grain at `host` into `buffer` (one grain long), bypassing
    /// the cache: for reads that cover the grain entirely.
    func inflate(host: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try Self.inflateGrain(file: file, at: host, grainBytes: Int(grainBytes), markers: header.hasMarkers, into: buffer)
    }

    /// Inflates the grain stored at `host`: with markers, a 12-byte marker (lba, size) then
    /// `size` bytes of zlib stream; without, a stream of at most two grains.
    private static func inflateGrain(file: any BlockDevice, at host: UInt64, grainBytes: Int, markers: Bool,
                                     into output: UnsafeMutableRawBufferPointer) throws {
        func fail(_ reason: String) -> ImageError {
            ImageError(path: file.displayName, offset: host, structure: "VMDK compressed grain", reason: reason)
        }
        guard host < file.size else { throw fail("grain lies past the end of the file") }
        var start = host
        var length = 2 * grainBytes
        if markers {
            let marker = try file.readBytes(at: host, count: Int(min(12, file.size - host)))
            guard marker.count == 12 else { throw fail("truncated grain marker") }
            let size = LittleEndianBytes(marker).u32(8)
            guard size > 0, UInt64(size) <= UInt64(2 * grainBytes) else { throw fail("compressed size \(size) is 0 or above two grains") }
            start = host + 12
            length = Int(size)
        }
        var input = [UInt8](repeating: 0, count: length)
        try input.withUnsafeMutableBytes { try file.readPastEnd(into: $0, at: start) }
        let result: Result<Void, VmdkFormatError> = input.withUnsafeBytes { source in
            Result { () throws(VmdkFormatError) in try VmdkCompression.inflate(source, into: output) }
        }
        if case let .failure(error) = result { throw fail(error.reason) }
    }
}

extension BlockDevice {
    /// Reads `buffer.count` bytes at `offset`, the part past the end reading as zeros.
    func readPastEnd(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        guard offset < size else { buffer.initializeMemory(as: UInt8.self, repeating: 0); return }
        let inside = Int(min(UInt64(buffer.count), size - offset))
        try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<inside]), at: offset)
        if inside < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[inside...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}
