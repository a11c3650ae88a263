import GuestFSBlock

/// What a new inode takes from its directory's default ACL (POSIX.1e draft 17 §23.1.4, as Linux
/// does it: fs/posix_acl.c posix_acl_create and posix_acl_create_masq, stored by ext4_init_acl).
/// With a default ACL the umask is not applied: the ACL masks the requested mode instead.
public struct InheritedACL: Sendable, Equatable {
    /// The new inode's mode (type bits included).
    public var mode: UInt16
    /// The access ACL to store (Linux xattr form), when it says more than the mode bits.
    public var access: [UInt8]?
    /// The default ACL a new directory passes on (its parent's, unchanged).
    public var defaultACL: [UInt8]?
}

extension WritableGuestFilesystem {
    /// The mode and ACLs of an inode of `mode` (type and permission bits, as requested, before
    /// any umask) about to be created in `directory` by a caller whose umask is `umask`.
    /// Symbolic links take neither the umask nor an ACL. A default ACL that cannot be parsed
    /// counts as none.
    public func inheritedACL(directory: UInt64, mode: UInt16, umask: UInt16) throws -> InheritedACL {
        let type = NodeType(mode: UInt32(mode))
        if type == .symlink { return InheritedACL(mode: mode) }
        guard let value = try xattr(directory, name: POSIXACL.defaultName),
              let acl = try? POSIXACL(value, name: POSIXACL.defaultName), !acl.entries.isEmpty else {
            return InheritedACL(mode: mode & ~(umask & 0o777))
        }
        var newMode = mode
        let access = acl.masked(creating: &newMode)
        return InheritedACL(mode: newMode, access: access.isEquivalentToMode ? nil : access.bytes,
                            defaultACL: type == .directory ? value : nil)
    }

    /// Stores the ACLs of `inherited` on `inode`, just created with `inherited.mode`.
    public func applyInheritedACL(_ inode: UInt64, _ inherited: InheritedACL) throws {
        if let value = inherited.defaultACL { try setXattr(inode, name: POSIXACL.defaultName, value: value, mode: .createOrReplace) }
        if let value = inherited.access { try setXattr(inode, name: POSIXACL.accessName, value: value, mode: .createOrReplace) }
    }
}

extension POSIXACL {
    /// posix_acl_create_masq: the owner, other and mask (else owning group) entries lose the
    /// permissions `mode` lacks, and `mode` loses those the entries lack; other bits of `mode`
    /// (type, setuid, setgid, sticky) are kept.
    package func masked(creating mode: inout UInt16) -> POSIXACL {
        var bits = mode & 0o777
        var out = entries
        for i in out.indices {
            switch out[i].tag {
            case Self.userObj:
                out[i].perm &= (bits >> 6) & 7
                bits &= (out[i].perm << 6) | 0o077
            case Self.other:
                out[i].perm &= bits & 7
                bits &= out[i].perm | 0o770
            default:
                break
            }
        }
        let groupTag = entries.contains { $0.tag == Self.mask } ? Self.mask : Self.groupObj
        if let i = out.firstIndex(where: { $0.tag == groupTag }) {
            out[i].perm &= (bits >> 3) & 7
            bits &= (out[i].perm << 3) | 0o707
        }
        mode = (mode & ~0o777) | bits
        return POSIXACL(entries: out)
    }

    /// __posix_acl_chmod: the owner, other and mask (else owning group) entries take `mode`'s bits.
    package func changingMode(to mode: UInt16) -> POSIXACL {
        let hasMask = entries.contains { $0.tag == Self.mask }
        return POSIXACL(entries: entries.map { entry in
            var e = entry
            switch e.tag {
            case Self.userObj: e.perm = (mode >> 6) & 7
            case Self.other: e.perm = mode & 7
            case Self.mask: e.perm = (mode >> 3) & 7
            case Self.groupObj where !hasMask: e.perm = (mode >> 3) & 7
            default: break
            }
            return e
        })
    }
}
