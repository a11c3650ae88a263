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

/// A directory on the host that copy-out creates things in, held open: every new file,
/// directory, link or node is made *relative to this descriptor* under one name that has
/// passed `GuestName` (no `/`, not `.` or `..`, no NUL), so nothing a guest names can land
/// outside the target, and no symlink on the way is followed (`O_NOFOLLOW`, and `openat2`'s
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it). Only the directory the
/// user named is opened by path.
///
/// Each call names the C function it wraps; errno is read only through `Syscall.valueOrErrno`.
final class HostDirectory: @unchecked Sendable {
    let fd: FileDescriptor
    /// For messages only: the user's path with the guest names below it.
    let display: String
    /// Files created here get exactly the permission bits they are created with, less the
    /// umask, and no other user can reach them until copy-out's last step: the directory is
    /// one copy-out made (owner-only, 0700, until its own mode is applied after its contents)
    /// and nothing above it down from the user's directory has a default ACL (which would
    /// replace the umask for new files, POSIX.1e / acl(5)). So a file may be created with its
    /// final mode instead of 0600 followed by fchmod: one syscall less per file.
    let createsWithExactMode: Bool
    /// No default ACL here, so directories made here pass none on.
    private let hasNoDefaultACL: Bool
    /// The directory's group when it was opened (its own chown, if any, comes after everything
    /// in it is made), or nil when fstat failed.
    private let group: gid_t?

    private init(fd: FileDescriptor, display: String, createsWithExactMode: Bool, hasNoDefaultACL: Bool) {
        self.fd = fd
        self.display = display
        self.createsWithExactMode = createsWithExactMode
        self.hasNoDefaultACL = hasNoDefaultACL
        var st = stat()
        group = fstat(fd.rawValue, &st) == 0 ? st.st_gid : nil
    }

    /// Whether a file created here is owned by `uid`:`gid` already, so chown can be left out.
    /// A new file's owner is the process's (effective, there being no setfsuid here) user; its
    /// group is the process's group, or the directory's when the directory is set-group-ID or
    /// the filesystem is mounted `grpid` (open(2), "O_CREAT"). Both cases are covered by
    /// asking that the directory's group be the process's group too.
    func newFilesAreOwned(by uid: UInt32, _ gid: UInt32) -> Bool {
        uid == Self.processUser && gid == Self.processGroup && group == Self.processGroup
    }

    /// The process's effective user and group, read once: geteuid(2) and getegid(2) are real
    /// syscalls (glibc does not cache them), three per file if asked each time, and copy-out
    /// never changes its credentials.
    private static let processUser = geteuid(), processGroup = getegid()

    deinit { try? fd.close() }

    /// `open(2)` of the directory the user gave (their own words: a symlink there is theirs to follow).
    static func open(existing path: String) throws -> HostDirectory {
        let result = Syscall.valueOrErrno { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        switch result {
        case .success(let fd):
            // ENODATA: no default ACL; ENOTSUP: the filesystem has no ACLs at all.
            let acl = fgetxattr(fd, "system.posix_acl_default", nil, 0)
            let noDefaultACL = acl < 0 && (errno == ENODATA || errno == ENOTSUP)
            // The user's own directory is not owner-only: what is created in it starts at 0600.
            return HostDirectory(fd: FileDescriptor(rawValue: fd), display: path, createsWithExactMode: false, hasNoDefaultACL: noDefaultACL)
        case .failure(let e): throw CLIError(message: "\(path): not an existing directory on the host (\(e.description))")
        }
    }

    /// The path shown for `name` in this directory.
    func display(_ name: Name) -> String {
        (display.hasSuffix("/") ? display : display + "/") + GuestName.display(name.bytes)
    }

    /// One path component that passed `GuestName`; the only thing the calls below accept.
    struct Name {
        let bytes: [UInt8]
        init?(_ bytes: [UInt8]) {
            guard GuestName.problem(bytes) == nil else { return nil }
            self.bytes = bytes
        }

        func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
            try (bytes + [0]).withUnsafeBufferPointer { buffer in
                try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
            }
        }
    }

    private func call(_ what: String, _ name: Name, _ body: (UnsafePointer<CChar>) -> Int32) throws {
        let result = name.withCString { p in Syscall.valueOrErrno { body(p) } }
        if case .failure(let e) = result { throw CLIError(message: "\(display(name)): \(what): \(e.description)") }
    }

    /// `fstatat(2)` with AT_SYMLINK_NOFOLLOW: the type of what is at `name`, if anything.
    func existingType(_ name: Name) -> mode_t? {
        var st = stat()
        let result = name.withCString { p in Syscall.valueOrErrno { fstatat(fd.rawValue, p, &st, AT_SYMLINK_NOFOLLOW) } }
        guard case .success = result else { return nil }
        return st.st_mode & S_IFMT
    }

    /// `mkdirat(2)` with owner-only permissions (the real mode comes after the contents), then
    /// the new directory opened beneath this one without following anything.
    func makeDirectory(_ name: Name) throws -> HostDirectory {
        try call("mkdir", name) { mkdirat(fd.rawValue, $0, 0o700) }
        let opened = name.withCString { p in
            Syscall.valueOrErrno { Self.openBeneath(fd.rawValue, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0) }
        }
        switch opened {
        case .success(let child):
            return HostDirectory(fd: FileDescriptor(rawValue: child), display: display(name),
                                 createsWithExactMode: hasNoDefaultACL, hasNoDefaultACL: hasNoDefaultACL)
        case .failure(let e): throw CLIError(message: "\(display(name)): open: \(e.description)")
        }
    }

    /// `openat(2)` of a new regular file (`O_EXCL | O_NOFOLLOW`), owner-only (0600) until its
    /// mode is set, or with `mode` where `createsWithExactMode`.
    func createFile(_ name: Name, mode: mode_t = 0o600) throws -> HostFile {
        let result = name.withCString { p in
            Syscall.valueOrErrno {
                Self.openBeneath(fd.rawValue, p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            }
        }
        switch result {
        case .success(let file): return HostFile(fd: FileDescriptor(rawValue: file), display: display(name))
        case .failure(let e): throw CLIError(message: "\(display(name)): create: \(e.description)")
        }
    }

    /// `symlinkat(2)`: `name` becomes a link to `target` (guest bytes, stored, never followed).
    func makeSymlink(_ name: Name, to target: [UInt8]) throws {
        guard !target.contains(0) else { throw CLIError(message: "\(display(name)): symlink target contains a NUL byte") }
        try call("symlink", name) { link in
            (target + [0]).withUnsafeBufferPointer { t in
                t.withMemoryRebound(to: CChar.self) { symlinkat($0.baseAddress!, fd.rawValue, link) }
            }
        }
    }

    /// `linkat(2)` without AT_SYMLINK_FOLLOW: `name` becomes another name of `existing` in `directory`.
    func makeHardLink(_ name: Name, to existing: Name, in directory: HostDirectory) throws {
        try call("link", name) { new in existing.withCString { linkat(directory.fd.rawValue, $0, fd.rawValue, new, 0) } }
    }

    /// `mknodat(2)` for device nodes and FIFOs.
    func makeNode(_ name: Name, mode: UInt32, major: UInt32, minor: UInt32) throws {
        let dev = gnu_dev_makedev(major, minor)
        try call("mknod", name) { mknodat(fd.rawValue, $0, mode_t(mode), dev_t(dev)) }
    }

    /// `fchownat(2)` with AT_SYMLINK_NOFOLLOW.
    func changeOwner(_ name: Name, uid: UInt32, gid: UInt32) throws {
        try call("chown", name) { fchownat(fd.rawValue, $0, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    /// `fchmodat(2)`; for the FIFOs and device nodes made just before (never symlinks).
    func changeMode(_ name: Name, _ mode: UInt16) throws {
        try call("chmod", name) { fchmodat(fd.rawValue, $0, mode_t(mode), 0) }
    }

    /// `utimensat(2)` with AT_SYMLINK_NOFOLLOW, to the nanosecond.
    func setTimes(_ name: Name, access: Timestamp, modification: Timestamp) throws {
        var times = [timespec(tv_sec: Int(access.seconds), tv_nsec: Int(access.nanoseconds)),
                     timespec(tv_sec: Int(modification.seconds), tv_nsec: Int(modification.nanoseconds))]
        try call("set times", name) { p in utimensat(fd.rawValue, p, &times, AT_SYMLINK_NOFOLLOW) }
    }

    /// `lsetxattr(2)` on `name` in this directory, for symlinks and nodes (no descriptor can be
    /// opened on them to write xattrs). The path goes through this directory's descriptor in
    /// /proc/self/fd, so only the one validated name is looked up, and not followed.
    func setXattr(_ name: Name, _ attribute: Xattr) throws {
        // Bytes, not a String: guest names need not be UTF-8.
        let path = Array("/proc/self/fd/\(fd.rawValue)/".utf8) + name.bytes + [0]
        let result = path.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { cpath in
                Syscall.valueOrErrno {
                    attribute.value.withUnsafeBytes { v in lsetxattr(cpath.baseAddress!, attribute.name, v.baseAddress, v.count, 0) }
                }
            }
        }
        if case .failure(let e) = result { throw CLIError(message: "\(display(name)): set xattr \(attribute.name): \(e.description)") }
    }

    /// The directory's own metadata, through its descriptor.
    var metadata: HostFile { HostFile(fd: fd, display: display) }

    /// `openat2(2)` with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it (Linux
    /// ≥ 5.6), else `openat(2)`: `flags` always carry O_NOFOLLOW and `name` is one component.
    private static func openBeneath(_ dirfd: Int32, _ name: UnsafePointer<CChar>, _ flags: Int32, _ mode: mode_t) -> Int32 {
        if openat2Available {
            let rc = hostio_openat2(dirfd, name, UInt64(UInt32(bitPattern: flags)), UInt64(mode), hostio_resolve_beneath_no_symlinks)
            if rc >= 0 || errno != ENOSYS { return rc }
            openat2Available = false
        }
        return openat(dirfd, name, flags, mode)
    }

    /// Cleared once the kernel says ENOSYS; a benign race (both values are right to use).
    nonisolated(unsafe) private static var openat2Available = true
}
