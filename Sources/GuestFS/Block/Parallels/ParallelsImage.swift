import Synchronization
import SystemPackage

/// A Parallels image, read-only or writable (`ParallelsImage+Write.swift`): clusters through
/// the BAT, loaded once at open (bounded by `ParallelsFormat.maxBATEntries`). An image whose
/// `inuse` field says it was not closed cleanly opens read-only as it is, as in QEMU (which
/// refuses only read-write opens of it without a check). Readers look the BAT up under a short lock.
final class ParallelsImage: BlockDevice {
    let file: any BlockDevice
    let header: ParallelsFormat.Header
    let size: UInt64
    let isWritable: Bool
    var displayName: String { file.displayName }
    /// The BAT and the writer's state.
    let state: Mutex<ParallelsWriteState>
    /// Serializes writers; readers never take it.
    let writeLock = BlockingLock()
    /// The BAT as it is now.
    var bat: [UInt32] { state.withLock { $0.bat } }

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
        self.file = file
        (header, size) = try Self.readHeader(file)
        let batBytes = UInt64(header.batEntries) * 4
        guard UInt64(ParallelsFormat.headerSize) + batBytes <= file.size else {
            throw ImageError(path: file.displayName, offset: 32, structure: ParallelsFormat.structure,
                             reason: "BAT of \(header.batEntries) entries runs past the end of the file (\(file.size) bytes)")
        }
        let bat = try file.readTable(at: UInt64(ParallelsFormat.headerSize), count: Int(header.batEntries), entryBytes: 4) { $0.u32($1) }
        state = Mutex(ParallelsWriteState(bat: bat))
        isWritable = options.writable
        if options.writable { try openForWriting() }
    }

    deinit { try? close() }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        try ClusterRead.read(into: buffer, at: offset, clusterSize: header.clusterSize, file: file, backing: nil,
                             map: { try source(ofCluster: $0) })
    }

    /// Where cluster `index` starts in the file (QEMU's seek_to_sector: an index past the BAT or
    /// a zero entry is unallocated and reads as zeros); nil when unallocated.
    func hostOffset(ofCluster index: UInt64) throws -> UInt64? {
        let entry = state.withLock { index < UInt64($0.bat.count) ? $0.bat[Int(index)] : 0 }
        if entry == 0 { return nil }
        let (sectors, o1) = UInt64(entry).multipliedReportingOverflow(by: header.offsetMultiplier)
        let (bytes, o2) = sectors.multipliedReportingOverflow(by: ParallelsFormat.sectorSize)
        guard !o1, !o2, bytes <= UInt64.max - header.clusterSize * 2 else {
            throw ImageError(path: file.displayName, offset: UInt64(ParallelsFormat.headerSize) + index * 4, structure: Self.batStructure,
                             reason: "entry \(index) (\(entry)) puts the cluster past any file")
        }
        return bytes
    }

    func source(ofCluster cluster: UInt64) throws -> ClusterRead.Source {
        // Unallocated clusters read as zeros: a Parallels image has no backing file of its own.
        guard let host = try hostOffset(ofCluster: cluster) else { return .zero }
        return .data(host)
    }
}
