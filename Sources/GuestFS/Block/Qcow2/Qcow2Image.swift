import Synchronization
import SystemPackage

/// The parsed and checked metadata of a qcow2 file: header, extensions, backing file name and
/// snapshot table. Enough for `info`; `Qcow2Image` adds the mapping on top.
package struct Qcow2Metadata: Sendable {
    package let header: Qcow2Header
    package let extensions: Qcow2Extensions
    /// The backing file name as stored in the image (not resolved).
    package let backingFile: String?
    package let snapshots: [Qcow2Snapshot]
    package let geometry: Qcow2Geometry
    package let compressionType: Qcow2CompressionType
    /// Size of the image file in bytes.
    package let fileSize: UInt64

    /// Reads and checks everything the first cluster and the snapshot table say (QEMU's
    /// qcow2_do_open up to the point where tables are loaded). Unknown incompatible features are
    /// refused here, named from the image's feature name table when it has one.
    package static func read(from file: any BlockDevice) throws -> Qcow2Metadata {
        do {
            return try readUnwrapped(file)
        } catch {
            throw ImageError.wrap(error, path: file.displayName)
        }
    }

    private static func readUnwrapped(_ file: any BlockDevice) throws -> Qcow2Metadata {
        func bad(_ reason: String, offset: UInt64 = 0, errno: Errno = .ioError) -> ImageError {
            ImageError(path: file.displayName, offset: offset, structure: "qcow2 header", reason: reason, errno: errno)
        }
        let fileSize = file.size
        // cluster_bits first (qcow2 spec, "Header", bytes 20-23): the header may fill the whole first cluster.
        let probe = try file.readBytes(at: 0, count: Int(min(fileSize, UInt64(Qcow2.v2HeaderLength))))
        guard probe.count >= Qcow2.v2HeaderLength else { throw bad("file is shorter than a qcow2 header") }
        guard Qcow2Bytes(probe).u32(0) == Qcow2.magic else { throw bad("bad magic, not a qcow2 image") }
        let clusterBits = Int(Qcow2Bytes(probe).u32(20))
        guard (Qcow2.minClusterBits...Qcow2.maxClusterBits).contains(clusterBits) else {
            throw bad("cluster_bits \(clusterBits) is outside 9...21 (512 B to 2 MiB clusters)", offset: 20)
        }
        let clusterSize = 1 << clusterBits
        let first = try file.readBytes(at: 0, count: Int(min(fileSize, UInt64(clusterSize))))
        let header: Qcow2Header
        do { header = try Qcow2Header.decode(first) } catch { throw bad(error.reason) }

        // Extensions first: the feature name table names unknown incompatible bits.
        let headerEnd = Int(header.headerLength)
        var areaEnd = first.count
        if header.backingFileOffset != 0, header.backingFileOffset < UInt64(areaEnd) {
            areaEnd = Int(header.backingFileOffset)
        }
        var extensions = Qcow2Extensions()
        if areaEnd > headerEnd {
            do { extensions = try Qcow2Extensions.decode(first[headerEnd..<areaEnd]) } catch {
                throw ImageError(path: file.displayName, offset: UInt64(headerEnd), structure: "header extension", reason: error.reason)
            }
        }

        let unknown = header.incompatibleFeatures & ~Qcow2IncompatibleFeatures.known.rawValue
        if unknown != 0 {
            let names = (0..<64).filter { unknown & (1 << UInt64($0)) != 0 }.map { bit in
                extensions.name(of: .incompatible, bit: bit).map { "\($0) (bit \(bit))" } ?? "unknown feature bit \(bit)"
            }
            throw bad("unsupported incompatible feature(s): \(names.joined(separator: ", "))", offset: 72, errno: .notSupported)
        }

        let extendedL2 = header.incompatible.contains(.extendedL2)
        if extendedL2, clusterBits < Qcow2.minClusterBitsExtendedL2 {
            throw bad("extended L2 entries need clusters of at least 16 KiB, this image has \(clusterSize) bytes", offset: 20)
        }
        let geometry = Qcow2Geometry(clusterBits: clusterBits, extendedL2: extendedL2)
        guard header.refcountOrder <= Qcow2.maxRefcountOrder else {
            throw bad("refcount_order \(header.refcountOrder) is above 6", offset: 96)
        }
        guard header.size <= Qcow2.maxVirtualSize else {
            throw bad("virtual size \(header.size) is above the limit of 2^61 bytes", offset: 24)
        }

        let compression: Qcow2CompressionType
        if header.incompatible.contains(.compressionType) {
            guard header.compressionType != 0, let type = Qcow2CompressionType(rawValue: header.compressionType) else {
                throw bad("compression type \(header.compressionType) is unknown or zero with the compression type bit set",
                          offset: UInt64(Qcow2.compressionTypeOffset), errno: .notSupported)
            }
            compression = type
        } else {
            guard header.compressionType == 0 else {
                throw bad("compression type \(header.compressionType) set without the compression type feature bit",
                          offset: UInt64(Qcow2.compressionTypeOffset))
            }
            compression = .zlib
        }
        guard Qcow2CryptMethod(rawValue: header.cryptMethod) != nil else {
            throw bad("unknown encryption method \(header.cryptMethod)", offset: 32, errno: .notSupported)
        }
        if header.incompatible.contains(.externalDataFile), extensions.externalDataFile == nil {
            throw bad("the image uses an external data file but does not name it", errno: .notSupported)
        }

        var backingFile: String?
        if header.backingFileOffset != 0 {
            let size = Int(header.backingFileSize)
            guard size <= Qcow2.maxBackingFileNameLength,
                  header.backingFileOffset < UInt64(first.count),
                  size <= first.count - Int(header.backingFileOffset) else {
                throw bad("backing file name (\(header.backingFileSize) bytes at 0x\(hex(header.backingFileOffset))) is too long or lies outside the first cluster",
                          offset: 8)
            }
            let start = Int(header.backingFileOffset)
            backingFile = String(decoding: first[start..<(start + size)], as: UTF8.self)
        }

        let snapshots: [Qcow2Snapshot]
        do {
            snapshots = try Qcow2Snapshot.readTable(
                count: header.nbSnapshots, offset: header.snapshotsOffset, clusterSize: clusterSize,
                fileSize: fileSize, read: { try file.readBytes(at: $0, count: $1) })
        } catch {
            throw ImageError.wrap(error, path: file.displayName)
        }
        return Qcow2Metadata(header: header, extensions: extensions, backingFile: backingFile, snapshots: snapshots,
                             geometry: geometry, compressionType: compression, fileSize: fileSize)
    }
}

/// A qcow2 image read through its L1/L2 tables, with its backing chain and external data file
/// (qcow2 spec, "Cluster mapping"). This is the device every layer above sees for a qcow2 file.
///
/// Opened for writing (the active state only, never a snapshot), writes go through `Qcow2Writer`;
/// `read` goes through `map`, which the writer shares. Reads are safe from many threads at once,
/// and so are writes (the writer serializes them).
package final class Qcow2Image: BlockDevice {
    package let path: String
    /// Virtual disk size (of the opened snapshot, when one was asked for).
    package let size: UInt64
    package var isWritable: Bool { writer.map { !$0.disabled.load(ordering: .acquiring) } ?? false }
    package var displayName: String { path }
    package let metadata: Qcow2Metadata
    /// The snapshot whose state this device shows, or nil for the active state.
    package let openedSnapshot: Qcow2Snapshot?
    /// The opened backing image, if any (read-only).
    package let backing: (any BlockDevice)?
    /// Resolved path of the backing image, as it was opened.
    package let backingPath: String?
    /// The opened external data file, if any (read-only).
    package let dataFile: (any BlockDevice)?

    /// The qcow2 file itself (metadata, and data without an external data file).
    let file: any BlockDevice
    let map: Qcow2ClusterMap
    let refcounts: Qcow2Refcount
    let corruption: Qcow2CorruptionReporter
    /// Recently decompressed clusters, for reads that take part of a compressed cluster.
    let decompressed: Qcow2TableCache
    /// The cipher of an encrypted image (Qcow2Encryption.swift), nil for plain images.
    let encryption: Qcow2Encryption?
    /// The writer, on images opened for writing.
    let writerSlot = Mutex<Qcow2Writer?>(nil)
    var writer: Qcow2Writer? { writerSlot.withLock { $0 } }

    /// Budget of the cache of decompressed clusters (at least two clusters are kept).
    static let decompressedCacheBytes = 2 << 20
    /// A read with at least this many compressed clusters decompresses them on the pool.
    static let parallelDecompressionMinClusters = 4
    /// Adjacent compressed clusters are fetched with one read when the gaps between them are small;
    /// this caps that one read.
    static let maxCoalescedCompressedRead = 8 << 20

    /// Opens `file` (already opened read-only) as qcow2.
    /// - Parameter openBacking: opens a backing file given its resolved path and format (nil: probe);
    ///   `ImageOpener` passes a closure that enforces the depth limit and refuses cycles.
    init(file: any BlockDevice, options: ImageOpenOptions,
         openBacking: (_ path: String, _ format: ImageFormat?) throws -> any BlockDevice) throws {
        let meta = try Qcow2Metadata.read(from: file)
        let h = meta.header, g = meta.geometry
        func bad(_ structure: String, _ offset: UInt64?, _ reason: String, errno: Errno = .ioError) -> ImageError {
            ImageError(path: file.displayName, offset: offset, structure: structure, reason: reason, errno: errno)
        }
        if h.cryptMethod == Qcow2CryptMethod.aes.rawValue, options.writable {
            throw Qcow2Encryption.aesWriteRefusal(path: file.displayName)
        }
        if options.metadataOnly, options.writable {
            throw bad("open", nil, "an image opened for its metadata only cannot be written", errno: .invalidArgument)
        }
        self.encryption = h.cryptMethod == Qcow2CryptMethod.none.rawValue || options.metadataOnly ? nil
            : try Qcow2Encryption.open(meta: meta, file: file, keys: options.keys, ids: [file.displayName] + options.keyIDs)

        // The L1 table to read: the active one, or a snapshot's.
        var virtualSize = h.size
        var l1Offset = h.l1TableOffset, l1Size = h.l1Size
        var snapshot: Qcow2Snapshot?
        if let wanted = options.snapshot {
            guard let found = meta.snapshots.find(wanted) else {
                throw bad("snapshot table", h.snapshotsOffset, "no snapshot with ID or name '\(wanted)'", errno: .noSuchFileOrDirectory)
            }
            snapshot = found
            virtualSize = found.diskSize ?? h.size
            l1Offset = found.l1TableOffset
            l1Size = found.l1Size
            guard virtualSize <= Qcow2.maxVirtualSize else {
                throw bad("snapshot table", h.snapshotsOffset, "snapshot '\(wanted)' has virtual size \(virtualSize), above 2^61 bytes")
            }
        }
        let structure = snapshot == nil ? "L1 table" : "L1 table of snapshot '\(snapshot!.name)'"
        let l1Bytes = UInt64(l1Size) * 8
        guard l1Bytes <= UInt64(Qcow2.maxL1TableBytes) else {
            throw bad(structure, l1Offset, "\(l1Size) entries exceed the limit of \(Qcow2.maxL1TableBytes / 8)")
        }
        if snapshot == nil, UInt64(l1Size) < g.l1EntriesNeeded(for: virtualSize) {
            throw bad(structure, l1Offset, "\(l1Size) entries are too few for a virtual size of \(virtualSize) bytes")
        }
        if l1Size > 0 {
            guard g.isClusterAligned(l1Offset) else { throw bad(structure, l1Offset, "offset is not cluster-aligned") }
            guard l1Offset >= UInt64(g.clusterSize) else { throw bad(structure, l1Offset, "table points into the image header") }
            guard l1Offset <= meta.fileSize, meta.fileSize - l1Offset >= l1Bytes else {
                throw bad(structure, l1Offset, "table of \(l1Bytes) bytes runs past the end of the file (0x\(hex(meta.fileSize)))")
            }
        }
        let raw = try file.readBytes(at: l1Offset, count: Int(l1Bytes))
        let l1 = raw.withUnsafeBytes { b in (0..<Int(l1Size)).map { Qcow2Bytes.u64(b, $0 * 8) } }

        let corruption = Qcow2CorruptionReporter(path: file.displayName, log: options.corruptionLog)
        let readMetadata: @Sendable (UInt64, UnsafeMutableRawBufferPointer) throws -> Void = { offset, buffer in
            try file.readPaddingPastEnd(into: buffer, at: offset)
        }
        let fileSize: @Sendable () -> UInt64 = { file.size }
        self.refcounts = try Qcow2Refcount(header: h, geometry: g, fileSize: fileSize, corruption: corruption,
                                           readMetadata: readMetadata)
        let externalData = h.incompatible.contains(.externalDataFile)
        let writable = options.writable && snapshot == nil
        if writable {
            try Self.checkWritable(meta, file: file)
        }
        self.map = Qcow2ClusterMap(geometry: g, l1: l1, fileSize: fileSize, externalData: externalData,
                                   l2CacheBytes: options.l2CacheBytes, corruption: corruption, readMetadata: readMetadata)
        self.decompressed = Qcow2TableCache(entryBytes: g.clusterSize, capacityBytes: Self.decompressedCacheBytes,
                                            loader: { _, _ in preconditionFailure("decompressed clusters are loaded by the read path") })
        self.corruption = corruption
        self.file = file
        self.path = file.displayName
        self.metadata = meta
        self.size = virtualSize
        self.openedSnapshot = snapshot

        if externalData, let name = meta.extensions.externalDataFile {
            let resolved = ImageOpener.resolve(name, relativeTo: file.displayName)
            try ImageOpener.checkMayOpen(resolved, as: "external data file", options: options, image: file.displayName, format: .qcow2)
            do {
                dataFile = try RawImage(path: resolved, writable: false)
            } catch {
                throw ImageError(path: file.displayName, structure: "external data file", reason: "cannot open '\(resolved)'",
                                 errno: (error as? ImageError)?.errno ?? .ioError, underlying: error)
            }
        } else {
            dataFile = nil
        }

        if let name = meta.backingFile {
            let resolved = ImageOpener.resolve(name, relativeTo: file.displayName)
            var format: ImageFormat?
            if let fmt = meta.extensions.backingFormat {
                guard let known = ImageFormat(rawValue: fmt) else {
                    throw bad("backing file", nil, "backing file format '\(fmt)' of '\(name)' is not supported", errno: .notSupported)
                }
                format = known
            }
            backing = try ImageOpener.openNamedBacking(resolved, image: file, format: .qcow2, backingFormat: format,
                                                       options: options, openBacking: openBacking)
            backingPath = resolved
        } else {
            backing = nil
            backingPath = nil
        }
        if writable, let raw = file as? RawImage {
            try openForWriting(raw)
        }
    }

    /// Opens `device` as a qcow2 image; its backing chain and external data file are opened from
    /// disk by the names the image holds, resolved against `device.displayName`.
    package convenience init(device: any BlockDevice, options: ImageOpenOptions = ImageOpenOptions()) throws {
        var walk = ImageOpener.BackingChainWalk()
        var backingOptions = options
        backingOptions.writable = false
        backingOptions.snapshot = nil
        backingOptions.keyIDs = []
        try self.init(file: device, options: options) { backingPath, backingFormat in
            backingOptions.format = backingFormat
            return try ImageOpener.open(path: backingPath, options: backingOptions, chain: &walk)
        }
    }

    deinit {
        do { try writer?.close() } catch {
            corruption.log("imagemount: \(ImageError.wrap(error, path: path).description): the image was not closed cleanly\n")
        }
    }

    /// The first corruption this device reported, if any.
    package var corruptionEvent: Qcow2CorruptionEvent? { corruption.firstEvent }

    /// The mapping of guest bytes from `guestOffset` (see `Qcow2Extent`).
    package func mapping(guestOffset: UInt64, length: Int) throws -> Qcow2Extent {
        try checkRange(offset: guestOffset, length: length, structure: "map")
        return try map.map(guestOffset: guestOffset, length: length)
    }

    /// How many times the host cluster at `hostOffset` is referenced.
    package func refcount(ofHostOffset hostOffset: UInt64) throws -> UInt64 {
        try refcounts.refcount(ofHostOffset: hostOffset)
    }

    /// "aes" or "luks" when the image is encrypted (and was unlocked), else nil.
    package var encryptionFormat: String? {
        switch encryption?.method { case .aes?: return "aes"; case .luks?: return "luks"; case nil: return nil }
    }

    /// The LUKS header of a LUKS-encrypted image.
    package var luksHeader: LUKSHeader? { encryption?.header }

    /// Loads and hits of the L2 cache so far.
    package var l2CacheStatistics: (loads: Int, hits: Int) { map.cache.statistics }
}
