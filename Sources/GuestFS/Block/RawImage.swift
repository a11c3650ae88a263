import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A raw disk image: a regular file or a host block device, read and written with pread/pwrite.
///
/// Opened read-only unless writing was asked for, so a read-only session cannot write a byte
/// even by mistake. The size of a sparse file is its apparent size (holes read as zeros); a
/// block device's size comes from BLKGETSIZE64.
public final class RawImage: BlockDevice {
    public let path: String
    public let size: UInt64
    public let isWritable: Bool
    public var displayName: String { path }
    let fd: FileDescriptor

    public init(path: String, writable: Bool) throws {
        self.path = path
        do {
            fd = try FileDescriptor.open(FilePath(path), writable ? .readWrite : .readOnly,
                                         options: [.closeOnExec])
        } catch let e as Errno {
            throw ImageError(path: path, reason: "cannot open: \(e.description)", errno: e)
        }
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
        isWritable = writable
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
        do {
            _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), buffer)
        } catch let e as Errno {
            throw ImageError(path: path, offset: offset, structure: "write", reason: e.description, errno: e)
        }
    }

    public func flush() throws {
        guard isWritable else { return }
        do { try Syscall.dataSync(fd) } catch {
            throw ImageError(path: path, structure: "flush", reason: error.description, errno: error)
        }
    }
}
