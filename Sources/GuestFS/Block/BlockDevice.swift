/// The one seam every layer of the stack meets (DESIGN.md §1).
///
/// Raw files, qcow2 images with their backing chain, partitions, LVs and in-memory overlays all
/// conform. Reads must be safe from several threads at once: the FUSE server reads file data in
/// parallel. Offsets and lengths are in bytes; a read or write must lie within `size`.
public protocol BlockDevice: AnyObject, Sendable {
    /// Size in bytes.
    var size: UInt64 { get }
    /// Whether `write` and `flush` may be called.
    var isWritable: Bool { get }
    /// A name for messages: the image path, or `/dev/sda1` for a partition.
    var displayName: String { get }
    /// Fills the whole buffer from `offset`, or throws.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws
    /// Writes the whole buffer at `offset`, or throws.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws
    /// Makes earlier writes durable.
    func flush() throws
    /// Writes `length` zero bytes at `offset`; qcow2 stores them as zero clusters where it can.
    func writeZeros(at offset: UInt64, length: Int) throws
}

extension BlockDevice {
    /// Checks that `[offset, offset+length)` lies within the device; throws naming `structure` if not.
    public func checkRange(offset: UInt64, length: Int, structure: String = "read") throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
        if overflow || end > size {
            throw ImageError(path: displayName, offset: offset, structure: structure,
                             reason: "range of \(length) bytes runs past the end of the device (size \(size))",
                             errno: .ioError)
        }
    }

    /// Fills `buffer` from `offset`, the part past `size` with zeros (a parent smaller than its
    /// child, a fixed VHD whose footer says more than the file holds).
    package func readZeroPaddedPast(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let inside = offset >= size ? 0 : Int(min(UInt64(buffer.count), size - offset))
        if inside > 0 { try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<inside]), at: offset) }
        if inside < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[inside...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    /// Reads a table of `count` fixed-width entries at `offset`, `chunkBytes` at a time, so that
    /// loading a large table never holds its raw bytes and its decoded entries at once.
    package func readTable<T>(at offset: UInt64, count: Int, entryBytes: Int, chunkBytes: Int = 1 << 20,
                              decode: (LittleEndianBytes, Int) -> T) throws -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        let perChunk = max(1, chunkBytes / entryBytes)
        var index = 0
        while index < count {
            let n = min(perChunk, count - index)
            let raw = LittleEndianBytes(try readBytes(at: offset + UInt64(index * entryBytes), count: n * entryBytes))
            for i in 0 ..< n { out.append(decode(raw, i * entryBytes)) }
            index += n
        }
        return out
    }

    /// Reads `length` bytes at `offset` into a new array.
    public func readBytes(at offset: UInt64, count length: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
        return bytes
    }

    /// Writes an array of bytes at `offset`.
    public func writeBytes(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Zeros written as data, a chunk at a time (devices that can do better implement it).
    public func writeZeros(at offset: UInt64, length: Int) throws {
        try checkRange(offset: offset, length: length, structure: "write")
        let chunk = [UInt8](repeating: 0, count: min(length, 1 << 20))
        var done = 0
        while done < length {
            let n = min(chunk.count, length - done)
            try chunk.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[..<n]), at: offset + UInt64(done)) }
            done += n
        }
    }

    /// The error a read-only device gives to a write.
    public func readOnlyError(offset: UInt64) -> ImageError {
        ImageError(path: displayName, offset: offset, structure: "write",
                   reason: "device is opened read-only", errno: .readOnlyFileSystem)
    }
}
