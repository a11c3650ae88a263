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

extension AppendingFormatWriter {
    /// The block-by-block write loop of formats whose unallocated blocks read as zeros (VDI,
    /// VHDX): a piece of an allocated block goes in place in `file` at `hostOffset`; a data piece of an
    /// unallocated one goes to `allocate`; a zero piece of an unallocated one is left alone.
    func writeByBlock(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64, into file: any BlockDevice, blockSize: UInt64,
                      hostOffset: (_ index: Int, _ within: UInt64) throws -> UInt64?,
                      allocate: (_ index: Int, _ data: UnsafeRawBufferPointer, _ within: UInt64) throws -> Void) throws {
        var done = 0
        var zeros: [UInt8] = []
        while done < length {
            let guest = offset + UInt64(done)
            let index = Int(guest / blockSize)
            let within = guest % blockSize
            let run = Int(min(UInt64(length - done), blockSize - within))
            if let host = try hostOffset(index, within) {
                if let buffer {
                    try file.write(UnsafeRawBufferPointer(rebasing: buffer[done ..< done + run]), at: host)
                } else {
                    if zeros.count < run { zeros = [UInt8](repeating: 0, count: run) }
                    try zeros.withUnsafeBytes { try file.write(UnsafeRawBufferPointer(rebasing: $0[..<run]), at: host) }
                }
            } else if let buffer {
                try allocate(index, UnsafeRawBufferPointer(rebasing: buffer[done ..< done + run]), within)
            }
            done += run
        }
    }
}
