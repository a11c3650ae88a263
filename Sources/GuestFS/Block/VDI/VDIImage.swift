import Synchronization
import SystemPackage

/// A VDI image (VirtualBox), static or dynamic: blocks through the block map, loaded once at
/// open (bounded by `VDIFormat.maxMapEntries`). Read-only, or writable with block allocation
/// (`VDIImage+Write.swift`). Reads from several threads look the map up under a short lock.
final class VDIImage: BlockDevice {
    let file: any BlockDevice
    let size: UInt64
    let isWritable: Bool
    var displayName: String { file.displayName }
    /// The header as opened (the allocated-blocks count lives on in `state`).
    let header: VDIFormat.Header
    /// The header's 512 bytes as read, rewritten with a new allocated-blocks count.
    let headerBytes: [UInt8]
    /// The block map and the allocation state, shared by readers and the writer.
    let state: Mutex<VDIBlockMapState>
    /// Serializes writers (allocation appends and map write-back); readers never take it.
    let writeLock = BlockingLock()
    let dataOffset: UInt64
    static let blockSize = UInt64(VDIFormat.blockSize)

    static let mapStructure = "VDI block map"

    /// The block map as it is now (for `check` and tests).
    var blockMap: [UInt32] { state.withLock { $0.map } }

    /// Reads and checks the header (for `info` and open).
    static func readHeader(_ file: any BlockDevice) throws -> (VDIFormat.Header, diskSize: UInt64, mapEntries: Int) {
        let (header, size, entries, _) = try readHeaderBytes(file)
        return (header, size, entries)
    }

    static func readHeaderBytes(_ file: any BlockDevice) throws -> (VDIFormat.Header, diskSize: UInt64, mapEntries: Int, bytes: [UInt8]) {
        guard file.size >= UInt64(VDIFormat.headerSize) else {
            throw ImageError(path: file.displayName, offset: 0, structure: VDIFormat.structure,
                             reason: "file of \(file.size) bytes is too small for a VDI header", errno: .invalidArgument)
        }
        let bytes = try file.readBytes(at: 0, count: VDIFormat.headerSize)
        let header = VDIFormat.Header(bytes)
        let (size, entries) = try header.validated(path: file.displayName)
        return (header, size, entries, bytes)
    }

    init(file: any BlockDevice, options: ImageOpenOptions) throws {
        self.file = file
        let (header, size, entries, bytes) = try Self.readHeaderBytes(file)
        self.header = header
        headerBytes = bytes
        self.size = size
        dataOffset = UInt64(header.offsetData)
        let mapOffset = UInt64(header.offsetBlockMap)
        guard mapOffset + UInt64(entries) * 4 <= file.size else {
            throw ImageError(path: file.displayName, offset: 0x154, structure: VDIFormat.structure,
                             reason: "block map at 0x\(String(mapOffset, radix: 16)) (\(entries * 4) bytes) runs past the end of the file")
        }
        let map = try file.readTable(at: mapOffset, count: entries, entryBytes: 4) { $0.u32($1) }
        state = Mutex(VDIBlockMapState(map: map, blocksAllocated: header.blocksAllocated))
        isWritable = options.writable
        if options.writable { try openForWriting() }
    }

    deinit { try? flush() }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        var done = 0
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let index = Int(guest / Self.blockSize)
            let within = guest % Self.blockSize
            var run = Int(min(UInt64(buffer.count - done), Self.blockSize - within))
            let host = try hostOffset(index, within: within)
            // Blocks that follow each other on the host are read in one call.
            if let start = host {
                var next = index + 1
                var expected = start + UInt64(run)
                while done + run < buffer.count, let h = try hostOffset(next, within: 0), h == expected {
                    let more = Int(min(UInt64(buffer.count - done - run), Self.blockSize))
                    run += more
                    expected += UInt64(more)
                    next += 1
                }
            }
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
            if let host { try file.read(into: chunk, at: host) } else { chunk.initializeMemory(as: UInt8.self, repeating: 0) }
            done += run
        }
    }

    /// Where guest byte `within` of block `index` is; nil for unallocated and discarded blocks
    /// (zeros, as QEMU reads both). An entry pointing outside the file fails this read only.
    func hostOffset(_ index: Int, within: UInt64) throws -> UInt64? {
        let entry = state.withLock { index < $0.map.count ? $0.map[index] : VDIFormat.unallocated }
        if entry >= VDIFormat.discarded { return nil }
        // entry < 2^32 and the block size is 2^20: the product fits in 52 bits.
        let start = dataOffset + UInt64(entry) * Self.blockSize
        if start + Self.blockSize > file.size {
            throw ImageError(path: file.displayName, offset: UInt64(header.offsetBlockMap) + UInt64(index) * 4, structure: Self.mapStructure,
                             reason: "entry \(index) puts block data at 0x\(String(start, radix: 16)), past the end of the file (\(file.size) bytes)")
        }
        return start + within
    }
}
