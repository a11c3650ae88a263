import Synchronization

/// Reusable buffers for FUSE reads, so a read costs no allocation and memory stays bounded.
///
/// Allocating a fresh 1 MiB buffer per read made glibc keep freed buffers in each worker
/// thread's arena (its mmap threshold rises after the first free), and a mount's resident
/// size wandered between 30 and 80 MiB. Here at most `keep` buffers are held between reads;
/// a read finding none free allocates one and frees it after, if the pool is full.
final class ReadBufferPool: Sendable {
    static let bufferSize = 1 << 20
    private let free = Mutex<[UnsafeMutableRawBufferPointerBox]>([])
    private let keep: Int

    init(keep: Int) { self.keep = keep }

    deinit { free.withLock { $0.forEach { $0.buffer.deallocate() } } }

    /// A buffer of at least `size` bytes; hand it back with `give(_:)` (use `defer`).
    /// (Not a closure-taking API: the FUSE `Request` it serves is non-copyable and must be
    /// consumed by its reply in the handler itself.)
    func take(size: Int) -> UnsafeMutableRawBufferPointerBox {
        guard size <= Self.bufferSize else {
            return UnsafeMutableRawBufferPointerBox(.allocate(byteCount: size, alignment: 4096))
        }
        return free.withLock { $0.popLast() }
            ?? UnsafeMutableRawBufferPointerBox(.allocate(byteCount: Self.bufferSize, alignment: 4096))
    }

    /// Returns a buffer from `take(size:)`: kept for the next read, or freed when the pool is full.
    func give(_ box: UnsafeMutableRawBufferPointerBox) {
        let kept = box.buffer.count == Self.bufferSize && free.withLock { list -> Bool in
            guard list.count < keep else { return false }
            list.append(box)
            return true
        }
        if !kept { box.buffer.deallocate() }
    }
}

/// A buffer pointer that may cross threads: the pool hands each to one reader at a time.
struct UnsafeMutableRawBufferPointerBox: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}
