import SystemPackage

/// QEMU-compatible image locking (DESIGN.md §3; QEMU's block/file-posix.c, raw_apply_lock_bytes
/// and raw_check_lock_bytes).
///
/// QEMU takes shared OFD locks (`F_OFD_SETLK`, `F_RDLCK`) on single bytes of every image file it
/// opens: byte 100 + bit for each permission it holds, byte 200 + bit for each permission it does
/// *not* share with others. Before it goes ahead it tests (`F_OFD_GETLK` with `F_WRLCK`) the bytes
/// that would conflict: 200 + bit for each permission it wants, 100 + bit for each one it does not
/// share. Taking the same bytes makes imagemount, qemu-img and a running VM see each other.
/// The locks belong to the open file description, so closing the descriptor releases them.
package enum ImageLock {
    /// QEMU's BLK_PERM_* bits (include/block/block-common.h), in lock-byte order.
    package struct Permissions: OptionSet, Sendable {
        package let rawValue: Int
        package init(rawValue: Int) { self.rawValue = rawValue }
        package static let consistentRead = Self(rawValue: 1 << 0)
        package static let write = Self(rawValue: 1 << 1)
        package static let writeUnchanged = Self(rawValue: 1 << 2)
        package static let resize = Self(rawValue: 1 << 3)
        package static let all: Self = [.consistentRead, .write, .writeUnchanged, .resize]

        /// The names QEMU's messages use (bdrv_perm_names).
        static let names = ["consistent read", "write", "write unchanged", "resize"]
    }

    /// RAW_LOCK_PERM_BASE: byte 100 + bit is locked for each permission held.
    static let permissionBase: Int64 = 100
    /// RAW_LOCK_SHARED_BASE: byte 200 + bit is locked for each permission not shared.
    static let sharedBase: Int64 = 200

    /// What a writer holds and shares: QEMU's format driver over a writable file takes consistent
    /// read, write and resize, and shares only consistent read and write-unchanged.
    static let writerPermissions: Permissions = [.consistentRead, .write, .resize]
    static let writerShared: Permissions = [.consistentRead, .writeUnchanged]
    /// A reader holds consistent read and shares everything: a read-only mount never keeps a VM
    /// from starting; it only warns when someone writes under it.
    static let readerPermissions: Permissions = [.consistentRead]
    static let readerShared: Permissions = .all

    /// Takes the lock bytes for a reader or a writer on `fd`, then checks for conflicts.
    ///
    /// A writer that conflicts throws (EAGAIN) naming the permission, as QEMU's "Failed to get
    /// "write" lock" does; the caller closes `fd`, which drops what was taken. A reader never
    /// fails on a conflict: the return value is a warning to show when someone else writes.
    @discardableResult
    static func acquire(_ fd: FileDescriptor, path: String, writable: Bool) throws -> String? {
        let held = writable ? writerPermissions : readerPermissions
        let shared = writable ? writerShared : readerShared
        do {
            for bit in 0..<4 {
                let p = Permissions(rawValue: 1 << bit)
                if held.contains(p) { try take(fd, permissionBase + Int64(bit), path) }
                if !shared.contains(p) { try take(fd, sharedBase + Int64(bit), path) }
            }
            for bit in 0..<4 {
                let p = Permissions(rawValue: 1 << bit)
                let name = Permissions.names[bit]
                if held.contains(p), try Syscall.ofdByteIsLockedByOthers(fd, sharedBase + Int64(bit)) {
                    throw conflict(path, "Failed to get \"\(name)\" lock: another process (QEMU or qemu-img) has the image open and does not share \(name) access")
                }
                if !shared.contains(p), try Syscall.ofdByteIsLockedByOthers(fd, permissionBase + Int64(bit)) {
                    throw conflict(path, "Failed to get shared \"\(name)\" lock: another process (QEMU or qemu-img) has the image open for \(name)")
                }
            }
            if !writable, try Syscall.ofdByteIsLockedByOthers(fd, permissionBase + 1) {
                return "imagemount: warning: \(path): another process (QEMU or qemu-img) has the image open for writing; what is read may be inconsistent\n"
            }
            return nil
        } catch let e as Errno {
            throw ImageError(path: path, structure: "image lock", reason: "cannot lock: \(e.description)", errno: e)
        }
    }

    private static func take(_ fd: FileDescriptor, _ byte: Int64, _ path: String) throws {
        guard try Syscall.ofdLockByte(fd, byte) else {
            throw conflict(path, "Failed to lock byte \(byte)")
        }
    }

    private static func conflict(_ path: String, _ reason: String) -> ImageError {
        ImageError(path: path, structure: "image lock", reason: "\(reason). Is another process using the image?",
                   errno: .resourceTemporarilyUnavailable)
    }
}
