import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage

/// setxattr and removexattr (fuse2fs's op_setxattr, op_removexattr). POSIX ACLs arrive in the
/// Linux xattr form and libext2fs stores them in ext4's on-disk form.
extension Ext2Filesystem {
    package func setXattr(_ number: UInt32, name: String, value: [UInt8], mode: XattrSetMode = .createOrReplace) throws {
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

    package func removeXattr(_ number: UInt32, name: String) throws {
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

    static let accessACL = POSIXACL.accessName
    static let defaultACL = POSIXACL.defaultName

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
