/// The write entry points of the formats that append new blocks and write their tables at
/// flush (VDI, VHD, QED, Parallels: each `*Image+Write.swift`): refuse a read-only image, check
/// the range, then one `writeLocked` under the image's write lock (`buffer` nil writes zeros).
protocol AppendingFormatWriter: BlockDevice {
    var isWritable: Bool { get }
    var writeLock: BlockingLock { get }
    /// One write, or one zero-write when `buffer` is nil; called with `writeLock` held.
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws
}

extension AppendingFormatWriter {
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        try writeLock.withLock { try writeLocked(buffer, length: buffer.count, at: offset) }
    }

    func writeZeros(at offset: UInt64, length: Int) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: length, structure: "write")
        try writeLock.withLock { try writeLocked(nil, length: length, at: offset) }
    }
}
