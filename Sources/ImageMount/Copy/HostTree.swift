import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// A host path the user gave (copy-in's sources and what is below them), as bytes: host
/// names need not be UTF-8. What copy-out creates goes through `HostDirectory` instead, never
/// through a path joined from guest names. Each call names the C function it wraps; errno is
/// read only through `Syscall.valueOrErrno`.
struct HostPath {
    var bytes: [UInt8]

    init(_ string: String) { bytes = Array(string.utf8) }
    init(bytes: [UInt8]) { self.bytes = bytes }

    func appending(_ name: [UInt8]) -> HostPath {
        HostPath(bytes: bytes.last == 0x2F ? bytes + name : bytes + [0x2F] + name)
    }

    var display: String { String(decoding: bytes, as: UTF8.self) }

    /// Calls `body` with the path as a C string.
    func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (bytes + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }

    /// `lstat(2)`: whether something already exists here, and whether it is a directory.
    func existingType() -> mode_t? {
        var st = stat()
        let result = withCString { p in Syscall.valueOrErrno { lstat(p, &st) } }
        guard case .success = result else { return nil }
        return st.st_mode & S_IFMT
    }
}

/// Metadata calls on an open host file or directory (copy-out's regular files and directories).
struct HostFile {
    let fd: FileDescriptor
    let display: String

    private func call(_ what: String, _ body: () -> Int32) throws {
        if case .failure(let e) = Syscall.valueOrErrno(body) {
            throw CLIError(message: "\(display): \(what): \(e.description)")
        }
    }

    /// `fchown(2)`.
    func changeOwner(uid: UInt32, gid: UInt32) throws { try call("chown") { fchown(fd.rawValue, uid, gid) } }

    /// `fchmod(2)`.
    func changeMode(_ mode: UInt16) throws { try call("chmod") { fchmod(fd.rawValue, mode_t(mode)) } }

    /// `futimens(2)`: access and modification times to the nanosecond.
    func setTimes(access: Timestamp, modification: Timestamp) throws {
        var times = [timespec(tv_sec: Int(access.seconds), tv_nsec: Int(access.nanoseconds)),
                     timespec(tv_sec: Int(modification.seconds), tv_nsec: Int(modification.nanoseconds))]
        try call("set times") { futimens(fd.rawValue, &times) }
    }

    /// `fsetxattr(2)`.
    func setXattr(_ attribute: Xattr) throws {
        try call("set xattr \(attribute.name)") {
            attribute.value.withUnsafeBytes { v in fsetxattr(fd.rawValue, attribute.name, v.baseAddress, v.count, 0) }
        }
    }

    /// `ftruncate(2)`.
    func setLength(_ length: UInt64) throws { try call("truncate") { ftruncate(fd.rawValue, off_t(length)) } }
}
