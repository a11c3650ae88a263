import SystemPackage

/// A Parallels image, read-only: clusters through the BAT, loaded once at open (bounded by
/// `ParallelsFormat.maxBATEntries`). An image whose `inuse` field says it was not closed
/// cleanly opens read-only, as in QEMU (which refuses only read-write opens of it without a
/// check). Immutable after open, so reads from several threads need no lock.
final class ParallelsImage: BlockDevice {
    let file: any BlockDevice
    let header: ParallelsFormat.Header
    let size: UInt64
    var isWritable: Bool { false }
    var displayName: String { file.displayName }
    let bat: [UInt32]

    static let batStructure = "Parallels BAT"

    static func readHeader(_ file: any BlockDevice) throws -> (ParallelsFormat.Header, size: UInt64) {
        guard file.size >= UInt64(ParallelsFormat.headerSize) else {
            throw ImageError(path: file.displayName, offset: 0, structure: ParallelsFormat.structure,
                             reason: "file of \(file.size) bytes is too small for a Parallels header", errno: .invalidArgument)
        }
        let header = ParallelsFormat.Header(try file.readBytes(at: 0, count: ParallelsFormat.headerSize))
        return (header, try header.validated(path: file.displayName))
    }

    init(file: any BlockDevice, options: ImageOpenOptions) throws {
        if options.writable {
            throw ImageError(path: file.displayName, structure: "Parallels image",
                             reason: "writing Parallels images is not supported: convert with qemu-img convert -O qcow2",
                             errno: .readOnlyFileSystem)
        }
        self.file = file
        (header, size) = try Self.readHeader(file)
        let batBytes = UInt64(header.batEntries) * 4
        guard UInt64(ParallelsFormat.headerSize) + batBytes <= file.size else {
            throw ImageError(path: file.displayName, offset: 32, structure: ParallelsFormat.structure,
                             reason: "BAT of \(header.batEntries) entries runs past the end of the file (\(file.size) bytes)")
        }
        bat = try file.readTable(at: UInt64(ParallelsFormat.headerSize), count: Int(header.batEntries), entryBytes: 4) { $0.u32($1) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        try ClusterRead.read(into: buffer, at: offset, clusterSize: header.clusterSize, file: file, backing: nil,
                             map: { try source(ofCluster: $0) })
    }

    /// Where cluster `index` starts in the file (QEMU's seek_to_sector: an index past the BAT or
    /// a zero entry is unallocated and reads as zeros); nil when unallocated.
    func hostOffset(ofCluster index: UInt64) throws -> UInt64? {
        guard index < UInt64(bat.count) else { return nil }
        let entry = bat[Int(index)]
        if entry == 0 { return nil }
        let (sectors, o1) = UInt64(entry).multipliedReportingOverflow(by: header.offsetMultiplier)
        let (bytes, o2) = sectors.multipliedReportingOverflow(by: ParallelsFormat.sectorSize)
        guard !o1, !o2, bytes <= UInt64.max - header.clusterSize * 2 else {
            throw ImageError(path: file.displayName, offset: UInt64(ParallelsFormat.headerSize) + index * 4, structure: Self.batStructure,
                             reason: "entry \(index) (\(entry)) puts the cluster past any file")
        }
        return bytes
    }

    private func source(ofCluster cluster: UInt64) throws -> ClusterRead.Source {
        // Unallocated clusters read as zeros: a Parallels image has no backing file of its own.
        guard let host = try hostOffset(ofCluster: cluster) else { return .zero }
        return .data(host)
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }

    func flush() throws {}
}
