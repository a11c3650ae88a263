import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The one place that reads `errno` and retries on EINTR (STYLE.md rule 8).
/// Every other file calls a typed wrapper from here or from swift-system.
public enum Syscall {
    /// Runs `body` until it does not fail with EINTR; returns its value or the errno it set.
    @inline(__always)
    public static func valueOrErrno<T: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ body: () -> T) -> Result<T, Errno> {
        while true {
            let value = body()
            if value != -1 { return .success(value) }
            let error = Errno(rawValue: Glibc.errno)
            if retryOnInterrupt && error == .interrupted { continue }
            return .failure(error)
        }
    }

    /// `fstat(2)` on a descriptor.
    static func fileStatus(_ fd: FileDescriptor) throws(Errno) -> stat {
        var st = stat()
        _ = try valueOrErrno { fstat(fd.rawValue, &st) }.get()
        return st
    }

    /// The size in bytes of a block device (`ioctl(BLKGETSIZE64)`).
    static func blockDeviceSize(_ fd: FileDescriptor) throws(Errno) -> UInt64 {
        var size: UInt64 = 0
        // BLKGETSIZE64 = _IOR(0x12, 114, size_t) on Linux (include/uapi/linux/fs.h).
        let request: UInt = 0x8008_1272
        _ = try valueOrErrno { ioctl(fd.rawValue, request, &size) }.get()
        return size
    }

    /// `fdatasync(2)`.
    static func dataSync(_ fd: FileDescriptor) throws(Errno) {
        _ = try valueOrErrno { fdatasync(fd.rawValue) }.get()
    }

    /// `fcntl(F_OFD_SETLK)` on a byte range. Returns false when another holder conflicts.
    static func ofdLock(_ fd: FileDescriptor, exclusive: Bool, start: Int64, length: Int64) throws(Errno) -> Bool {
        var lock = flock()
        lock.l_type = Int16(exclusive ? F_WRLCK : F_RDLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = .init(start)
        lock.l_len = .init(length)
        // F_OFD_SETLK = 37 on Linux (include/uapi/asm-generic/fcntl.h).
        let result = valueOrErrno { fcntl(fd.rawValue, 37, &lock) }
        switch result {
        case .success: return true
        case .failure(let e) where e == .resourceTemporarilyUnavailable || e == .permissionDenied: return false
        case .failure(let e): throw e
        }
    }
}
