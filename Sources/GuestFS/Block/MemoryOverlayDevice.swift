import Synchronization

/// A device whose writes land in memory and never reach the device below it.
///
/// Reads return the written bytes where there are any and the base device's bytes elsewhere,
/// in the way e2fsprogs' `undo_io` stacks over another io_manager (STYLE.md §3). Read-only
/// mounts of a filesystem whose journal needs recovery replay the journal into one of these,
/// so the user sees the recovered state while the image keeps every byte (STYLE.md rule 6).
///
/// Memory is kept in chunks of `chunkSize` bytes (the filesystem block size is a good choice),
/// created on first write by reading the base chunk, so partial writes merge with the base.
/// The total is capped at `maxBytes`: a write that would need more throws ENOSPC instead of
/// growing without bound. Reads may run on several threads at once, also during writes.
public final class MemoryOverlayDevice: BlockDevice {
    public let base: any BlockDevice
    public let chunkSize: Int
    public let maxBytes: UInt64
    public var size: UInt64 { base.size }
    public var displayName: String { base.displayName }
    /// Always true: writes go to memory, whatever the base allows.
    public var isWritable: Bool { true }

    /// Chunk index → bytes (`chunkSize` long, shorter only for the last chunk of the device),
    /// and the total those chunks hold.
    private struct State {
        var chunks: [UInt64: [UInt8]] = [:]
        var bytes: UInt64 = 0
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - chunkSize: a power of two ≥ 512, the unit memory is kept in.
    ///   - maxBytes: the most memory the written chunks may take.
    public init(base: any BlockDevice, chunkSize: Int = 4096, maxBytes: UInt64) {
        precondition(chunkSize >= 512 && chunkSize & (chunkSize - 1) == 0, "chunk size must be a power of two ≥ 512")
        self.base = base
        self.chunkSize = chunkSize
        self.maxBytes = maxBytes
    }

    /// How many bytes of written data are held in memory.
    public var bytesInMemory: UInt64 {
        state.withLock { $0.bytes }
    }

    /// The byte ranges held in memory, as (offset, length), in order. Tests and reports use it.
    public var modifiedRanges: [(offset: UInt64, length: Int)] {
        state.withLock { s in
            s.chunks.keys.sorted().map { (offset: $0 * UInt64(chunkSize), length: s.chunks[$0]!.count) }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        guard buffer.count > 0 else { return }
        let chunk = UInt64(chunkSize)
        let first = offset / chunk, last = (offset + UInt64(buffer.count) - 1) / chunk
        // Copy what memory holds under the lock; collect the gaps and read them from the base
        // outside it, one read per run of chunks memory does not hold.
        var gaps: [(start: Int, end: Int)] = []
        state.withLock { s in
            var gapStart: Int? = nil
            for index in first...last {
                let chunkStart = index * chunk
                let from = Int(max(chunkStart, offset) - offset)
                let to = Int(min(chunkStart + chunk, offset + UInt64(buffer.count)) - offset)
                if let bytes = s.chunks[index] {
                    if let s = gapStart { gaps.append((s, from)); gapStart = nil }
                    let within = Int(offset + UInt64(from) - chunkStart)
                    bytes.withUnsafeBytes { src in
                        (buffer.baseAddress! + from).copyMemory(from: src.baseAddress! + within, byteCount: to - from)
                    }
                } else if gapStart == nil {
                    gapStart = from
                }
            }
            if let s = gapStart { gaps.append((s, buffer.count)) }
        }
        for gap in gaps {
            try base.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[gap.start..<gap.end]),
                          at: offset + UInt64(gap.start))
        }
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        guard buffer.count > 0 else { return }
        let chunk = UInt64(chunkSize)
        let first = offset / chunk, last = (offset + UInt64(buffer.count) - 1) / chunk
        // Chunks the write covers only in part start from the base's bytes; read those first,
        // outside the lock, and check the memory cap before anything changes.
        let missing = state.withLock { s in (first...last).filter { s.chunks[$0] == nil } }
        let newBytes = missing.reduce(UInt64(0)) { $0 + UInt64(chunkLength($1)) }
        if newBytes > 0 {
            guard bytesInMemory + newBytes <= maxBytes else {
                throw ImageError(path: displayName, offset: offset, structure: "in-memory overlay",
                                 reason: "write of \(buffer.count) bytes needs more than the \(maxBytes) bytes the overlay may hold",
                                 errno: .noSpace)
            }
        }
        var loaded: [UInt64: [UInt8]] = [:]
        for index in missing {
            let start = index * chunk
            let covered = start >= offset && start + UInt64(chunkLength(index)) <= offset + UInt64(buffer.count)
            loaded[index] = covered ? [UInt8](repeating: 0, count: chunkLength(index))
                                    : try base.readBytes(at: start, count: chunkLength(index))
        }
        state.withLock { s in
            for (index, bytes) in loaded where s.chunks[index] == nil {
                s.chunks[index] = bytes
                s.bytes += UInt64(bytes.count)
            }
            for index in first...last {
                let chunkStart = index * chunk
                let from = Int(max(chunkStart, offset) - offset)
                let to = Int(min(chunkStart + chunk, offset + UInt64(buffer.count)) - offset)
                let within = Int(offset + UInt64(from) - chunkStart)
                s.chunks[index]!.withUnsafeMutableBytes { dst in
                    (dst.baseAddress! + within).copyMemory(from: buffer.baseAddress! + from, byteCount: to - from)
                }
            }
        }
    }

    /// Nothing to make durable: the data lives only as long as this object.
    public func flush() throws {}

    /// The length of chunk `index`: `chunkSize`, or less for the device's last chunk.
    private func chunkLength(_ index: UInt64) -> Int {
        Int(min(UInt64(chunkSize), size - index * UInt64(chunkSize)))
    }
}
