import GuestFSBlock
import GuestFSFilesystem

/// POSIX ACLs as XFS stores them, in the trusted attributes "SGI_ACL_FILE" (access) and
/// "SGI_ACL_DEFAULT" (default) (xfs_acl.h `struct xfs_acl`, `struct xfs_acl_entry`):
/// acl_cnt (be32), then per entry ae_tag (be32), ae_id (be32), ae_perm (be16) and 2 bytes of
/// padding. Linux shows them as system.posix_acl_access / _default in the xattr form of
/// linux/posix_acl_xattr.h (version 2, then tag le16, perm le16, id le32), which is what
/// xfs_acl_from_disk followed by posix_acl_to_xattr gives.
enum XFSACL {
    static let accessName: [UInt8] = Array("SGI_ACL_FILE".utf8)
    static let defaultName: [UInt8] = Array("SGI_ACL_DEFAULT".utf8)
    static let accessXattr = "system.posix_acl_access"
    static let defaultXattr = "system.posix_acl_default"
    /// ACL_USER, ACL_GROUP: the only tags whose id means something; others show ACL_UNDEFINED_ID.
    private static let user: UInt32 = 0x02, group: UInt32 = 0x08
    private static let known: Set<UInt32> = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20]

    /// The system.* name a trusted attribute stands for, when it is an ACL.
    static func systemName(forTrusted name: [UInt8]) -> String? {
        name == accessName ? accessXattr : name == defaultName ? defaultXattr : nil
    }

    /// The Linux xattr form of an xfs_acl value.
    static func linuxXattr(_ value: [UInt8], inode: UInt64) throws -> [UInt8] {
        let b = XFSBytes(value, structure: "ACL of inode \(inode)")
        let count = Int(try b.u32(0))
        guard count <= (b.count - 4) / 12, 4 + count * 12 == b.count else {
            throw b.damaged("ACL of \(b.count) bytes claims \(count) entries")
        }
        var out: [UInt8] = [2, 0, 0, 0]
        out.reserveCapacity(4 + count * 8)
        for i in 0 ..< count {
            let tag = try b.u32(4 + i * 12), id = try b.u32(8 + i * 12), perm = try b.u16(12 + i * 12)
            guard known.contains(tag), perm & ~7 == 0 else { throw b.damaged("ACL entry \(i) has tag \(tag), permissions \(perm)") }
            let shownID = tag == user || tag == group ? id : UInt32.max
            out += [UInt8(tag & 0xFF), UInt8(tag >> 8 & 0xFF), UInt8(perm & 0xFF), UInt8(perm >> 8)]
            out += [UInt8(shownID & 0xFF), UInt8(shownID >> 8 & 0xFF), UInt8(shownID >> 16 & 0xFF), UInt8(shownID >> 24)]
        }
        return out
    }
}
