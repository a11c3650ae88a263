import SystemPackage

/// A qcow version 1 image, read-only: clusters through the L1 table (loaded at open, bounded by
/// `Qcow1Format.maxL1Entries`) and L2 tables (loaded on demand into a bounded cache), compressed
/// clusters inflated into a second cache, unallocated clusters from the backing file. The
/// caches lock themselves; everything else is immutable after open, so reads from several
/// threads need no lock of ours.
final class Qcow1Image: BlockDevice {
    let file: any BlockDevice
    let metadata: Qcow1Metadata
    let size: UInt64
    var isWritable: Bool { false }
    var displayName: String { file.displayName }
    let backing: (any BlockDevice)?
    private let l1: [UInt64]
    private let l2Cache: Qcow2TableCache
    private let inflated: Qcow2TableCache
    private let clusterSize: UInt64
    /// The bits of a compressed entry that hold its host offset (QEMU's cluster_offset_mask).
    private let compressedOffsetMask: UInt64
    /// The legacy AES cipher of an encrypted image, which data clusters are decrypted with
    /// (qcow_co_preadv); compressed clusters are stored in the clear (QEMU never compresses
    /// into an encrypted image and decompress_cluster decrypts nothing).
    private let encryption: Qcow2Encryption?

    static let l2Structure = "qcow L2 table"
    static let compressedStructure = "qcow compressed cluster"
    /// Budgets of the two caches (16 L2 tables of QEMU's L2_CACHE_SIZE would be 1 MiB at most).
    static let l2CacheBytes = 1 << 20
    static let inflatedCacheBytes = 1 << 20

    init(file: any BlockDevice, options: ImageOpenOptions,
         openBacking: (_ path: String, _ format: ImageFormat?) throws -> any BlockDevice) throws {
        if options.writable {
            throw ImageError(path: file.displayName, structure: "qcow image",
                             reason: "writing qcow (version 1) images is not supported: convert with qemu-img convert -O qcow2",
                             errno: .readOnlyFileSystem)
        }
        let meta = try Qcow1Metadata.read(from: file)
        let h = meta.header
        // Legacy AES (qcow_open: crypt_method QCOW_CRYPT_AES) is the same cipher as qcow2's
        // crypt_method 1, guest-sector IVs included; the key comes from --key as for qcow2.
        encryption = h.cryptMethod == Qcow1Format.cryptAES && !options.metadataOnly
            ? try Qcow2Encryption.legacyAES(path: file.displayName, keys: options.keys, ids: [file.displayName] + options.keyIDs)
            : nil
        self.file = file
        metadata = meta
        size = h.virtualSize
        clusterSize = h.clusterSize
        compressedOffsetMask = (UInt64(1) << (63 - UInt64(h.clusterBits))) - 1
        // QEMU reads the L1 table with bdrv_pread, bytes past the end of the file as zeros; but
        // qcow_create always writes the whole table, so one that does not fit in the file is
        // refused: a small file then cannot make us allocate a large table.
        let l1Bytes = UInt64(meta.l1Entries) * 8
        guard h.l1TableOffset <= file.size, file.size - h.l1TableOffset >= l1Bytes else {
            throw ImageError(path: file.displayName, offset: 40, structure: Qcow1Format.structure,
                             reason: "L1 table at 0x\(String(h.l1TableOffset, radix: 16)) (\(l1Bytes) bytes) runs past the end of the file (\(file.size) bytes)")
        }
        l1 = try file.readTable(at: h.l1TableOffset, count: meta.l1Entries, entryBytes: 8) { $0.u64($1).byteSwapped }
        let l2Bytes = h.l2Entries * 8
        l2Cache = Qcow2TableCache(entryBytes: l2Bytes, capacityBytes: Self.l2CacheBytes) { offset, buffer in
            try file.readZeroPaddedPast(into: buffer, at: offset)
        }
        inflated = Qcow2TableCache(entryBytes: Int(h.clusterSize), capacityBytes: Self.inflatedCacheBytes) { _, _ in
            preconditionFailure("inflated clusters are loaded by the read path")
        }
        if let name = meta.backingFile {
            // qcow v1 records no backing format: QEMU probes it, so do we (under the probing policy).
            let resolved = ImageOpener.resolve(name, relativeTo: file.displayName)
            backing = try ImageOpener.openNamedBacking(resolved, image: file, format: .qcow, backingFormat: nil,
                                                       options: options, openBacking: openBacking)
        } else {
            backing = nil
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        guard let encryption else {
            try ClusterRead.read(into: buffer, at: offset, clusterSize: clusterSize, file: file, backing: backing,
                                 map: { try source(ofCluster: $0) },
                                 inflate: { try inflate(entry: $0, within: $1, into: $2) })
            return
        }
        // AES works on whole 512-byte sectors: an unaligned read goes through a sector-aligned
        // scratch buffer. Aligned, every run of data clusters is too (clusters are sector
        // multiples on both sides, and source(ofCluster:) refuses unaligned host offsets).
        let sector = UInt64(Qcow2Encryption.sectorSize)
        let head = offset % sector
        let end = offset + UInt64(buffer.count)
        // The virtual size is whole sectors (Qcow1Format: total_sectors), so this stays inside it.
        let alignedEnd = (end + sector - 1) / sector * sector
        func readAligned(_ into: UnsafeMutableRawBufferPointer, at start: UInt64) throws {
            try ClusterRead.read(into: into, at: start, clusterSize: clusterSize, file: file, backing: backing,
                                 map: { try source(ofCluster: $0) },
                                 readData: { chunk, host, guest in
                                     try self.file.readZeroPaddedPast(into: chunk, at: host)
                                     encryption.decrypt(chunk, hostOffset: host, guestOffset: guest)
                                 },
                                 inflate: { try inflate(entry: $0, within: $1, into: $2) })
        }
        if head == 0, alignedEnd == end {
            try readAligned(buffer, at: offset)
            return
        }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(alignedEnd - (offset - head)), alignment: 16)
        defer { scratch.deallocate() }
        try readAligned(scratch, at: offset - head)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[Int(head) ..< Int(head) + buffer.count]))
    }

    /// QEMU's get_cluster_offset without allocation: 0 in L1 or L2 means unallocated.
    private func source(ofCluster cluster: UInt64) throws -> ClusterRead.Source {
        let l2Bits = UInt64(metadata.header.l2Bits)
        let l1Index = Int(cluster >> l2Bits)
        guard l1Index < l1.count else { return .backing }
        let l2Offset = l1[l1Index]
        if l2Offset == 0 { return .backing }
        let index = Int(cluster & ((1 << l2Bits) - 1))
        let entry = try l2Cache.withTable(at: l2Offset) { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) }
        if entry == 0 { return .backing }
        if entry & Qcow1Format.compressedFlag != 0 { return .compressed(entry) }
        // qcow_co_preadv fails a read of a cluster that is not sector-aligned.
        guard entry & 511 == 0 else {
            throw ImageError(path: file.displayName, offset: l2Offset + UInt64(index) * 8, structure: Self.l2Structure,
                             reason: "entry \(index) points at 0x\(String(entry, radix: 16)), which is not sector-aligned")
        }
        return .data(entry)
    }

    /// qcow's decompress_cluster: `csize` bytes of raw deflate (window bits -12, no zlib header)
    /// at the entry's offset must inflate to exactly one cluster.
    private func inflate(entry: UInt64, within: Int, into chunk: UnsafeMutableRawBufferPointer) throws {
        let bits = 63 - UInt64(metadata.header.clusterBits)
        let host = entry & compressedOffsetMask
        let compressedBytes = Int((entry >> bits) & (clusterSize - 1))
        try inflated.withTable(at: entry, load: { _, cluster in
            var input = [UInt8](repeating: 0, count: compressedBytes)
            try input.withUnsafeMutableBytes { try file.readZeroPaddedPast(into: $0, at: host) }
            do {
                try input.withUnsafeBytes { try Qcow2Compression.decompress(.zlib, $0, into: cluster) }
            } catch {
                throw ImageError(path: file.displayName, offset: host, structure: Self.compressedStructure, reason: (error as? Qcow2FormatError)?.reason ?? "\(error)")
            }
        }) { whole in
            chunk.copyMemory(from: UnsafeRawBufferPointer(rebasing: whole[within ..< within + chunk.count]))
        }
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }

    func flush() throws {}
}
