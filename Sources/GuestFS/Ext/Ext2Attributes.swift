import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage


/// setattr: chmod, chown, truncate and utimens (fuse2fs's op_chmod, op_chown, op_truncate,
/// op_utimens). Permission checks are the kernel's (default_permissions); this applies.
extension Ext2Filesystem {
    /// A setattr that changes nothing still sets ctime: `chown(f, -1, -1)` reaches us as one
    /// with no fields (the kernel keeps ATTR_CTIME to itself without writeback caching), and
    /// ext4 sets ctime for it (notify_change always adds ATTR_CTIME).
    package func setAttributes(_ number: UInt32, _ changes: AttributeChanges) throws {
        if let size = changes.size {
            try truncate(number, to: size)
            guard changes.mode != nil || changes.uid != nil || changes.gid != nil || changes.accessTime != nil ||
                  changes.modificationTime != nil || changes.changeTime != nil else { return }
        }
        try withWriteHandle { fs in
            let inodeSize = superblock.inodeSize
            try updateInode(number, fs: fs) { raw in
                let now = Timestamp.now
                if let mode = changes.mode { raw.i_mode = (raw.i_mode & Ext2Inode.typeMask) | (mode & 0o7777) }
                raw.setOwner(uid: changes.uid, gid: changes.gid)
                switch changes.accessTime {
                case .now?: raw.setAccessTime(now, inodeSize: inodeSize)
                case .at(let t)?: raw.setAccessTime(t, inodeSize: inodeSize)
                case nil: break
                }
                switch changes.modificationTime {
                case .now?: raw.setModificationTime(now, inodeSize: inodeSize)
                case .at(let t)?: raw.setModificationTime(t, inodeSize: inodeSize)
                case nil: break
                }
                raw.touchChange(inodeSize: inodeSize, now: changes.changeTime ?? now)
            }
        }
        if let mode = changes.mode { try chmodAccessACL(number, mode: mode) }
    }

    /// chmod of an inode with an access ACL also rewrites the ACL's owner, mask (else owning
    /// group) and other entries (posix_acl_chmod, as ext4_setattr calls it), or getfacl would
    /// keep showing the old permissions.
    private func chmodAccessACL(_ number: UInt32, mode: UInt16) throws {
        guard let value = try xattr(number, name: Self.accessACL), let acl = try? POSIXACL(value, name: Self.accessACL) else { return }
        let changed = acl.changingMode(to: mode).bytes
        if changed != value { try setXattr(number, name: Self.accessACL, value: changed) }
    }
}
