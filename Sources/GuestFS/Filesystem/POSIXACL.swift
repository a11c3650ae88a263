import GuestFSBlock

/// A POSIX ACL in the Linux xattr form: a version word (2), then 8-byte entries of tag,
/// permissions and id, little-endian (linux/posix_acl_xattr.h).
package struct POSIXACL {
    package struct Entry {
        package let tag: UInt16
        package var perm: UInt16
        package let id: UInt32
        package init(tag: UInt16, perm: UInt16, id: UInt32) { self.tag = tag; self.perm = perm; self.id = id }
    }
    package let entries: [Entry]

    /// The xattr names Linux keeps ACLs under.
    public static let accessName = "system.posix_acl_access"
    public static let defaultName = "system.posix_acl_default"

    package static let userObj: UInt16 = 0x01, user: UInt16 = 0x02, groupObj: UInt16 = 0x04, group: UInt16 = 0x08
    package static let mask: UInt16 = 0x10, other: UInt16 = 0x20

    package init(entries: [Entry]) { self.entries = entries }

    /// The Linux xattr form of this ACL.
    package var bytes: [UInt8] {
        var out: [UInt8] = [2, 0, 0, 0]
        for e in entries {
            out += [UInt8(truncatingIfNeeded: e.tag), UInt8(truncatingIfNeeded: e.tag >> 8),
                    UInt8(truncatingIfNeeded: e.perm), UInt8(truncatingIfNeeded: e.perm >> 8)]
            out += (0..<4).map { UInt8(truncatingIfNeeded: e.id >> UInt32(8 * $0)) }
        }
        return out
    }

    package init(_ bytes: [UInt8], name: String) throws {
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
    package var isEquivalentToMode: Bool { entries.allSatisfy { [Self.userObj, Self.groupObj, Self.other].contains($0.tag) } }

    /// rwxrwxrwx from the ACL: owner, mask (else owning group), other; bits the ACL lacks keep `mode`'s.
    package func permissionBits(keeping mode: UInt16) -> UInt16 {
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
