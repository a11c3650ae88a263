import GuestFS
import SystemPackage
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// Creating files on the host with the metadata a guest file had: the host half of copy-out.
///
/// Paths are byte strings (guest names need not be UTF-8), NUL-terminated on use. Each call
/// names the C function it wraps; errno is read only through `Syscall.valueOrErrno`.
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

    private func call(_ what: String, _ body: (UnsafePointer<CChar>) -> Int32) throws {
        let result = withCString { p in Syscall.valueOrErrno { body(p) } }
        if case .failure(let e) = result {
            throw CLIError(message: "\(display): \(what): \(e.description)")
        }
    }

    /// `mkdir(2)` with owner-only permissions; the real mode is applied after the contents.
    func makeDirectory() throws { try call("mkdir") { mkdir($0, 0o700) } }

    /// `symlink(2)`: this path becomes a link to `target` (never followed).
    func makeSymlink(to target: [UInt8]) throws {
        let t = HostPath(bytes: target)
        try call("symlink") { link in t.withCString { symlink($0, link) } }
    }

    /// `link(2)`: this path becomes another name of `existing`.
    func makeHardLink(to existing: HostPath) throws {
        try call("link") { new in existing.withCString { link($0, new) } }
    }

    /// `mknod(2)` for device nodes, FIFOs.
    func makeNode(mode: UInt32, major: UInt32, minor: UInt32) throws {
        let dev = gnu_dev_makedev(major, minor)
        try call("mknod") { mknod($0, mode_t(mode), dev_t(dev)) }
    }

    /// `open(2)` a new regular file for writing, owner-only until the real mode is applied.
    func createFile() throws -> FileDescriptor {
        let result = withCString { p in Syscall.valueOrErrno { open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) } }
        switch result {
        case .success(let fd): return FileDescriptor(rawValue: fd)
        case .failure(let e): throw CLIError(message: "\(display): create: \(e.description)")
        }
    }

    /// `lchown(2)`: owner and group, without following a symlink.
    func changeOwner(uid: UInt32, gid: UInt32) throws { try call("chown") { lchown($0, uid, gid) } }

    /// `chmod(2)`; not for symlinks.
    func changeMode(_ mode: UInt16) throws { try call("chmod") { chmod($0, mode_t(mode)) } }

    /// `utimensat(2)` with AT_SYMLINK_NOFOLLOW: access and modification times to the nanosecond.
    func setTimes(access: Timestamp, modification: Timestamp) throws {
        var times = [timespec(tv_sec: Int(access.seconds), tv_nsec: Int(access.nanoseconds)),
                     timespec(tv_sec: Int(modification.seconds), tv_nsec: Int(modification.nanoseconds))]
        try call("set times") { p in utimensat(AT_FDCWD, p, &times, AT_SYMLINK_NOFOLLOW) }
    }

    /// `lsetxattr(2)`.
    func setXattr(_ attribute: Xattr) throws {
        try call("set xattr \(attribute.name)") { p in
            attribute.value.withUnsafeBytes { v in lsetxattr(p, attribute.name, v.baseAddress, v.count, 0) }
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

/// Metadata calls on an open host file: the same as `HostPath`'s, without a path lookup each.
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
