import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The one place that reads `errno` and retries on EINTR (STYLE.md rule 8).
/// Every other file calls a typed wrapper from here or from swift-system.
package enum Syscall {
    /// Runs `body` until it does not fail with EINTR; returns its value or the errno it set.
    @inline(__always)
    package static func valueOrErrno<T: FixedWidthInteger>(retryOnInterrupt: Bool = true, _ body: () -> T) -> Result<T, Errno> {
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

    /// `fcntl(F_OFD_SETLK)` on one byte: takes a shared (`F_RDLCK`) lock, as QEMU's qemu_lock_fd
    /// does, or releases it (`F_UNLCK`). Returns false when another holder conflicts.
    static func ofdLockByte(_ fd: FileDescriptor, _ byte: Int64, unlock: Bool = false) throws(Errno) -> Bool {
        var lock = flock()
        lock.l_type = Int16(unlock ? F_UNLCK : F_RDLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = .init(byte)
        lock.l_len = 1
        // F_OFD_SETLK = 37 on Linux (include/uapi/asm-generic/fcntl.h).
        switch valueOrErrno({ fcntl(fd.rawValue, 37, &lock) }) {
        case .success: return true
        case .failure(let e) where e == .resourceTemporarilyUnavailable || e == .permissionDenied: return false
        case .failure(let e): throw e
        }
    }

    /// `fcntl(F_OFD_GETLK)` on one byte with an exclusive (`F_WRLCK`) probe, as QEMU's
    /// qemu_lock_fd_test does: true when another open file description holds any lock on it.
    /// Locks held through `fd` itself never conflict.
    static func ofdByteIsLockedByOthers(_ fd: FileDescriptor, _ byte: Int64) throws(Errno) -> Bool {
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = .init(byte)
        lock.l_len = 1
        // F_OFD_GETLK = 36 on Linux (include/uapi/asm-generic/fcntl.h).
        _ = try valueOrErrno { fcntl(fd.rawValue, 36, &lock) }.get()
        return lock.l_type != Int16(F_UNLCK)
    }
}
