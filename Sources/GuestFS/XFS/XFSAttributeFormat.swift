import GuestFSBlock
import GuestFSFilesystem

/// Extended attribute layout constants and the raw form of one attribute, before namespaces
/// and ACLs are applied ("XFS Algorithms & Data Structures" §20 "Extended Attributes";
/// xfs_da_format.h `XFS_ATTR_*` flags, `xfs_attr_shortform`, `xfs_attr_leafblock`).
enum XFSAttributeFormat {
    /// XFS_ATTR_LOCAL: the value follows the name in the leaf (else it is in remote blocks).
    static let local: UInt8 = 0x01
    /// XFS_ATTR_ROOT ("trusted."), XFS_ATTR_SECURE ("security."), XFS_ATTR_PARENT (parent
    /// pointers, never shown as xattrs), XFS_ATTR_INCOMPLETE (a set or remove in progress).
    static let root: UInt8 = 0x02, secure: UInt8 = 0x04, parent: UInt8 = 0x08, incomplete: UInt8 = 0x80
    static let namespaceMask: UInt8 = root | secure | parent
    /// XFS_ATTR_LEAF_MAGIC, XFS_ATTR3_LEAF_MAGIC.
    static let v4LeafMagic: UInt16 = 0xFBEE, v5LeafMagic: UInt16 = 0x3BEE
    /// XFS_ATTR3_RMT_MAGIC "XARM".
    static let remoteMagic: UInt32 = 0x5841_524D
    /// sizeof(struct xfs_attr3_rmt_hdr).
    static let remoteHeaderSize = 56
    /// XFS_XATTR_SIZE_MAX: no value is larger (the VFS limit, 64 KiB).
    static let maxValueSize = 65_536
    /// xfs_attr_leaf_hdr is 32 bytes (blkinfo 12, count, usedbytes, firstused, holes, pad,
    /// freemap[3]); xfs_attr3_leaf_hdr 80 (da3_blkinfo 56, the same fields, pad2).
    static func leafHeaderSize(v5: Bool) -> Int { v5 ? 80 : 32 }

    /// The xattr name prefix for namespace flags, nil for parent pointers and bad combinations.
    static func prefix(flags: UInt8) -> String? {
        switch flags & namespaceMask {
        case 0: return "user."
        case root: return "trusted."
        case secure: return "security."
        default: return nil
        }
    }

    /// The namespace flags and on-disk name of a full xattr name ("user.x" → (0, "x")).
    static func split(_ name: String) -> (flags: UInt8, name: [UInt8])? {
        for (p, f) in [("user.", UInt8(0)), ("trusted.", root), ("security.", secure)] where name.hasPrefix(p) {
            let rest = Array(name.utf8.dropFirst(p.utf8.count))
            return rest.isEmpty ? nil : (f, rest)
        }
        return nil
    }
}

/// One attribute as the fork stores it.
struct XFSRawAttribute: Equatable {
    enum Value: Equatable {
        case local([UInt8])
        /// In `length` bytes from logical block `block` of the attribute fork.
        case remote(block: UInt32, length: UInt32)
    }
    var flags: UInt8
    var name: [UInt8]
    var value: Value

    var namespace: UInt8 { flags & XFSAttributeFormat.namespaceMask }
    /// Shown as an xattr: complete, and not a parent pointer.
    var isVisible: Bool {
        flags & XFSAttributeFormat.incomplete == 0 && XFSAttributeFormat.prefix(flags: flags) != nil
    }
}
