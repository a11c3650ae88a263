import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A raw disk image: a regular file or a host block device, read and written with pread/pwrite.
///
/// Opened read-only unless writing was asked for, so a read-only session cannot write a byte
/// even by mistake. The size of a sparse file is its apparent size (holes read as zeros); a
/// block device's size comes from BLKGETSIZE64.
public final class RawImage: ImageSource {
    public let path: String
    /// The size in bytes; it grows only through `writeExtending` (qcow2 files appending clusters).
    public var size: UInt64 { currentSize.load(ordering: .acquiring) }
    private let currentSize: Atomic<UInt64>
    public let isWritable: Bool
    public var displayName: String { path }
    let fd: FileDescriptor
    /// See `ImageSource.refusesImageHeaders`.
    public var refusesImageHeaders: Bool {
        get { refusingHeaders.load(ordering: .relaxed) }
        set { refusingHeaders.store(newValue, ordering: .relaxed) }
    }
    private let refusingHeaders = Atomic<Bool>(false)

    public init(path: String, writable: Bool) throws {
        self.path = path
        do {
            fd = try FileDescriptor.open(FilePath(path), writable ? .readWrite : .readOnly,
                                         options: [.closeOnExec])
        } catch let e as Errno {
            throw ImageError(path: path, reason: "cannot open: \(e.description)", errno: e)
        }
        var size: UInt64 = 0
        do {
            let st = try Syscall.fileStatus(fd)
            switch st.st_mode & S_IFMT {
            case S_IFREG: size = UInt64(st.st_size)
            case S_IFBLK: size = try Syscall.blockDeviceSize(fd)
            case S_IFDIR: throw ImageError(path: path, reason: "is a directory, not a disk image", errno: .isDirectory)
            default: throw ImageError(path: path, reason: "is neither a regular file nor a block device", errno: .invalidArgument)
            }
        } catch {
            try? fd.close()
            throw ImageError.wrap(error, path: path)
        }
        currentSize = Atomic(size)
        isWritable = writable
    }

    /// Takes QEMU's lock bytes for this descriptor (see `ImageLock`): a writer's when the file is
    /// open for writing, else a reader's. Returns a warning for a reader when someone writes.
    @discardableResult
    public func lockLikeQEMU() throws -> String? {
        try ImageLock.acquire(fd, path: path, writable: isWritable)
    }

    deinit { try? fd.close() }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        var done = 0
        while done < buffer.count {
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let n: Int
            do {
                n = try fd.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: chunk)
            } catch let e as Errno {
                throw ImageError(path: path, offset: offset + UInt64(done), structure: "read",
                                 reason: e.description, errno: e)
            }
            if n == 0 {
                // The file shrank under us: what is no longer there reads as zeros, as a hole would.
                chunk.initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            done += n
        }
    }

    /// Like `read(into:at:)` but for a range that may run past the end: the part beyond
    /// `size` reads as zeros. Used for backing files shorter than their overlay.
    public func readZeroPadded(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        guard offset < size else { buffer.initializeMemory(as: UInt8.self, repeating: 0); return }
        let inside = Int(min(UInt64(buffer.count), size - offset))
        try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<inside]), at: offset)
        if inside < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[inside...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        if refusesImageHeaders, offset < Self.probeBytes, !buffer.isEmpty { try checkFirstSector(buffer, at: offset) }
        do {
            _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), buffer)
        } catch let e as Errno {
            throw ImageError(path: path, offset: offset, structure: "write", reason: e.description, errno: e)
        }
    }

    /// Writes that may run past the end of the file and grow it (a qcow2 file appending clusters).
    func writeExtending(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        do {
            _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), buffer)
        } catch let e as Errno {
            throw ImageError(path: path, offset: offset, structure: "write", reason: e.description, errno: e)
        }
        noteSize(atLeast: offset + UInt64(buffer.count))
    }

    /// `writeExtending` of `pieces` laid end to end from `offset`, in one `pwritev(2)` where the
    /// kernel takes it all (IOV_MAX pieces a call, and a short write resumes where it stopped):
    /// a block a format appends (zeros, data, zeros; bitmap, block, footer) goes out without
    /// first being put together in a buffer of its own.
    func writeExtending(gathering pieces: [UnsafeRawBufferPointer], at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        var vectors = pieces.filter { !$0.isEmpty }.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        let total = pieces.reduce(0) { $0 + $1.count }
        var first = 0, done = 0
        while first < vectors.count {
            let count = Int32(min(vectors.count - first, Self.maxPieces))
            let at = Int64(offset) + Int64(done)
            let result = vectors.withUnsafeBufferPointer { v in
                Syscall.valueOrErrno { pwritev(fd.rawValue, v.baseAddress! + first, count, off_t(at)) }
            }
            var n: Int
            switch result {
            case .success(let written): n = written
            case .failure(let e):
                throw ImageError(path: path, offset: offset + UInt64(done), structure: "write", reason: e.description, errno: e)
            }
            guard n > 0 else {
                throw ImageError(path: path, offset: offset + UInt64(done), structure: "write", reason: "the file took no bytes", errno: .ioError)
            }
            done += n
            // Skip what went out whole; trim the piece it stopped in.
            while first < vectors.count, n >= vectors[first].iov_len {
                n -= vectors[first].iov_len
                first += 1
            }
            if n > 0 {
                vectors[first].iov_base = vectors[first].iov_base.map { $0 + n }
                vectors[first].iov_len -= n
            }
        }
        noteSize(atLeast: offset + UInt64(total))
    }

    /// IOV_MAX on Linux (UIO_MAXIOV, include/uapi/linux/uio.h), which Glibc's module does not export.
    static let maxPieces = 1024

    /// Raises `size` to `end` if it is below (writers may race to grow the file).
    private func noteSize(atLeast end: UInt64) {
        var current = currentSize.load(ordering: .acquiring)
        while end > current {
            let (exchanged, original) = currentSize.compareExchange(expected: current, desired: end, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
    }

    /// Grows the file to `newSize` bytes, the new part reading as zeros (a hole), as QEMU's
    /// bdrv_truncate does for a VHDX block it allocates. Never shrinks. `ftruncate(2)`.
    func extend(to newSize: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: newSize) }
        guard newSize > size else { return }
        guard newSize <= UInt64(Int64.max) else {
            throw ImageError(path: path, offset: newSize, structure: "write", reason: "file size past 2^63", errno: .fileTooLarge)
        }
        do { try fd.resize(to: Int64(newSize)) } catch let e as Errno {
            throw ImageError(path: path, offset: newSize, structure: "write", reason: "cannot grow the file: \(e.description)", errno: e)
        }
        noteSize(atLeast: newSize)
    }

    public func flush() throws {
        guard isWritable else { return }
        do { try Syscall.dataSync(fd) } catch {
            throw ImageError(path: path, structure: "flush", reason: error.description, errno: error)
        }
    }
}
