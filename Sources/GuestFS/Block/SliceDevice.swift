/// A window `[start, start+size)` of another device: a partition, or a whole-disk filesystem.
public final class SliceDevice: BlockDevice {
    public let base: any BlockDevice
    public let start: UInt64
    public let size: UInt64
    public let displayName: String

    /// Fails when the window does not fit inside `base`.
    public init(base: any BlockDevice, start: UInt64, size: UInt64, name: String) throws {
        let (end, overflow) = start.addingReportingOverflow(size)
        guard !overflow, end <= base.size else {
            throw ImageError(path: base.displayName, offset: start, structure: name,
                             reason: "extends past the end of the disk (\(size) bytes at \(start), disk is \(base.size) bytes)")
        }
        self.base = base
        self.start = start
        self.size = size
        self.displayName = name
    }

    public var isWritable: Bool { base.isWritable }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        try base.read(into: buffer, at: start + offset)
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        try base.write(buffer, at: start + offset)
    }

    public func flush() throws { try base.flush() }
}
