import CExt2fs
import SystemPackage

/// How setxattr treats an existing attribute (XATTR_CREATE / XATTR_REPLACE, sys/xattr.h).
public enum XattrSetMode: Sendable {
    case createOrReplace
    /// EEXIST when the attribute exists.
    case create
    /// ENODATA when it does not.
    case replace
}

/// setxattr and removexattr (fuse2fs's op_setxattr, op_removexattr). POSIX ACLs arrive in the
/// Linux xattr form and libext2fs stores them in ext4's on-disk form.
extension Ext2Filesystem {
    public func setXattr(_ number: UInt32, name: String, value: [UInt8], mode: XattrSetMode = .createOrReplace) throws {
        try Self.validateXattrName(name)
        guard value.count <= 65_536 else { throw error(.outOfRange, "xattr \(name)", "value larger than 64 KiB") }
        // Without ext_attr there is nowhere to put one (the kernel would turn the feature on;
        // we do not change a filesystem's features).
        guard hasXattrFeature else {
            throw error(.notSupported, "xattr \(name)", "the filesystem has no ext_attr feature")
        }
        try withXattrHandle(number) { handle, fs in
            let exists = try xattrExists(handle, name, number)
            if mode == .create && exists { throw error(.fileExists, "xattr \(name)", "already exists") }
            if mode == .replace && !exists { throw error(.noData, "xattr \(name)", "no such attribute") }
            // POSIX ACLs, as ext4_set_acl handles them: the access ACL decides the permission
            // bits, and one that says no more than the bits is not stored at all.
            if name == Self.accessACL || name == Self.defaultACL {
                let acl = try POSIXACL(value, name: name)
                var store = !acl.entries.isEmpty
                if name == Self.accessACL {
                    store = !acl.isEquivalentToMode
                    let inodeSize = superblock.inodeSize
                    try updateInode(number, fs: fs) { raw in
                        raw.i_mode = (raw.i_mode & ~0o777) | acl.permissionBits(keeping: raw.i_mode)
                        raw.touchChange(inodeSize: inodeSize)
                    }
                } else {
                    let (_, inode) = try readInode(number, fs: fs)
                    guard inode.isDirectory else { throw error(.permissionDenied, "xattr \(name)", "default ACLs are for directories") }
                }
                if !store {
                    if exists { try check(ext2fs_xattr_remove(handle, name), "xattr \(name)", inode: number) }
                    return
                }
            }
            let rc = value.withUnsafeBytes { ext2fs_xattr_set(handle, name, $0.baseAddress, $0.count) }
            if rc == EXT2_ET_EA_NO_SPACE {
                throw error(.noSpace, "xattr \(name)", "no room for the attribute")
            }
            try check(rc, "xattr \(name)", inode: number)
        }
    }

    public func removeXattr(_ number: UInt32, name: String) throws {
        try Self.validateXattrName(name)
        guard hasXattrFeature else {
            if name == Self.accessACL || name == Self.defaultACL { return }
            throw error(.noData, "xattr \(name)", "no such attribute")
        }
        try withXattrHandle(number) { handle, fs in
            guard try xattrExists(handle, name, number) else {
                // Removing an ACL that is not there is success (ext4_set_acl with no ACL).
                if name == Self.accessACL || name == Self.defaultACL { return }
                throw error(.noData, "xattr \(name)", "no such attribute")
            }
            try check(ext2fs_xattr_remove(handle, name), "xattr \(name)", inode: number)
        }
    }

    static let accessACL = "system.posix_acl_access"
    static let defaultACL = "system.posix_acl_default"

    /// The namespaces Linux's ext4 stores (fs/ext4/xattr.c handlers); "system.data" belongs
    /// to inline data and is never the user's.
    static func validateXattrName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 255 else {
            throw ImageError(structure: "xattr", reason: "bad attribute name length", errno: .outOfRange)
        }
        let allowed = ["user.", "trusted.", "security."]
        let acls = ["system.posix_acl_access", "system.posix_acl_default"]
        guard allowed.contains(where: { name.hasPrefix($0) && name.count > $0.count }) || acls.contains(name) else {
            throw ImageError(structure: "xattr \(name)", reason: "unsupported attribute namespace", errno: .notSupported)
        }
    }

    private func withXattrHandle(_ number: UInt32, _ body: (OpaquePointer?, ext2_filsys) throws -> Void) throws {
        try withWriteHandle { fs in
            var handle: OpaquePointer?
            try check(ext2fs_xattrs_open(fs, number, &handle), "xattrs", inode: number)
            defer { ext2fs_xattrs_close(&handle) }
            try check(ext2fs_xattrs_read(handle), "xattrs", inode: number)
            try body(handle, fs)
            let inodeSize = superblock.inodeSize
            try updateInode(number, fs: fs) { $0.touchChange(inodeSize: inodeSize) }
        }
    }

    private func xattrExists(_ handle: OpaquePointer?, _ name: String, _ number: UInt32) throws -> Bool {
        var value: UnsafeMutableRawPointer?
        var length = 0
        let rc = ext2fs_xattr_get(handle, name, &value, &length)
        if rc == EXT2_ET_EA_KEY_NOT_FOUND { return false }
        try check(rc, "xattr \(name)", inode: number)
        ext2fs_free_mem(&value)
        return true
    }
}

/// A POSIX ACL in the Linux xattr form: a version word (2), then 8-byte entries of tag,
/// permissions and id, little-endian (linux/posix_acl_xattr.h).
struct POSIXACL {
    struct Entry { let tag: UInt16; var perm: UInt16; let id: UInt32 }
    let entries: [Entry]

    static let userObj: UInt16 = 0x01, user: UInt16 = 0x02, groupObj: UInt16 = 0x04, group: UInt16 = 0x08
    static let mask: UInt16 = 0x10, other: UInt16 = 0x20

    init(entries: [Entry]) { self.entries = entries }

    /// The Linux xattr form of this ACL.
    var bytes: [UInt8] {
        var out: [UInt8] = [2, 0, 0, 0]
        for e in entries {
            out += [UInt8(truncatingIfNeeded: e.tag), UInt8(truncatingIfNeeded: e.tag >> 8),
                    UInt8(truncatingIfNeeded: e.perm), UInt8(truncatingIfNeeded: e.perm >> 8)]
            out += (0..<4).map { UInt8(truncatingIfNeeded: e.id >> UInt32(8 * $0)) }
        }
        return out
    }

    init(_ bytes: [UInt8], name: String) throws {
        func le16(_ i: Int) -> UInt16 { UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8 }
        func le32(_ i: Int) -> UInt32 { UInt32(le16(i)) | UInt32(le16(i + 2)) << 16 }
        guard bytes.count >= 4, le32(0) == 2, (bytes.count - 4) % 8 == 0 else {
            throw ImageError(structure: "xattr \(name)", reason: "not a POSIX ACL (version 2)", errno: .invalidArgument)
        }
        entries = stride(from: 4, to: bytes.count, by: 8).map { Entry(tag: le16($0), perm: le16($0 + 2), id: le32($0 + 4)) }
        let known: Set<UInt16> = [Self.userObj, Self.user, Self.groupObj, Self.group, Self.mask, Self.other]
        guard entries.allSatisfy({ known.contains($0.tag) && $0.perm & ~7 == 0 }) else {
            throw ImageError(structure: "xattr \(name)", reason: "unknown ACL entry", errno: .invalidArgument)
        }
    }

    /// No named users or groups and no mask: the permission bits say it all (posix_acl_equiv_mode).
    var isEquivalentToMode: Bool { entries.allSatisfy { [Self.userObj, Self.groupObj, Self.other].contains($0.tag) } }

    /// rwxrwxrwx from the ACL: owner, mask (else owning group), other; bits the ACL lacks keep `mode`'s.
    func permissionBits(keeping mode: UInt16) -> UInt16 {
        var bits = mode & 0o777
        for e in entries {
            switch e.tag {
            case Self.userObj: bits = (bits & ~0o700) | e.perm << 6
            case Self.groupObj where !entries.contains { $0.tag == Self.mask }: bits = (bits & ~0o070) | e.perm << 3
            case Self.mask: bits = (bits & ~0o070) | e.perm << 3
            case Self.other: bits = (bits & ~0o007) | e.perm
            default: break
            }
        }
        return bits
    }
}
