import GuestFSFilesystem
import CArchive

/// POSIX ACLs between the Linux xattr form the guest stores (`POSIXACL`,
/// linux/posix_acl_xattr.h) and libarchive's entries, which its pax writer turns into
/// `SCHILY.acl.access` / `SCHILY.acl.default` (the keywords star and GNU tar --acls use) and its
/// reader parses back.
enum TarACL {
    /// (Linux tag, libarchive tag) pairs.
    private static let tags: [(UInt16, Int32)] = [
        (POSIXACL.userObj, ARCHIVE_ENTRY_ACL_USER_OBJ), (POSIXACL.user, ARCHIVE_ENTRY_ACL_USER),
        (POSIXACL.groupObj, ARCHIVE_ENTRY_ACL_GROUP_OBJ), (POSIXACL.group, ARCHIVE_ENTRY_ACL_GROUP),
        (POSIXACL.mask, ARCHIVE_ENTRY_ACL_MASK), (POSIXACL.other, ARCHIVE_ENTRY_ACL_OTHER),
    ]
    /// ACL_UNDEFINED_ID: the id field of entries that name no one (acl/libacl.h).
    private static let undefinedID: UInt32 = 0xFFFF_FFFF

    /// Adds `acl` to `entry` as `type` (ARCHIVE_ENTRY_ACL_TYPE_ACCESS or _DEFAULT). An access
    /// ACL's owner, group and other entries are the mode bits already, so libarchive folds them in.
    static func add(_ acl: POSIXACL, type: Int32, to entry: OpaquePointer) {
        for e in acl.entries {
            guard let tag = tags.first(where: { $0.0 == e.tag })?.1 else { continue }
            let named = e.tag == POSIXACL.user || e.tag == POSIXACL.group
            _ = carchive_archive_entry_acl_add_entry(entry, type, Int32(e.perm & 7), tag, named ? Int32(bitPattern: e.id) : -1, nil)
        }
    }

    /// The ACL of `type` libarchive read for `entry`, in the Linux xattr form, or nil when the
    /// member has none (an access ACL that only repeats the mode is none). Entries are sorted
    /// as the kernel requires (tag, then id: posix_acl_valid). An entry naming a user or group
    /// by name (GNU tar writes names) takes its id from `names`; one no name resolves is left
    /// out and its name returned in `unresolved`.
    static func read(_ entry: OpaquePointer, type: Int32, names: TarNameMap, unresolved: inout [String]) -> POSIXACL? {
        guard carchive_archive_entry_acl_reset(entry, type) > 0 else { return nil }
        var entries: [POSIXACL.Entry] = []
        var t: Int32 = 0, perm: Int32 = 0, tag: Int32 = 0, qual: Int32 = 0
        var name: UnsafePointer<CChar>? = nil
        // Bounded: libarchive's list is finite, and an ACL is at most what a pax header held.
        while carchive_archive_entry_acl_next(entry, type, &t, &perm, &tag, &qual, &name) == ARCHIVE_OK {
            guard t == type, let linux = tags.first(where: { $0.1 == tag })?.0 else { continue }
            var id = undefinedID
            if linux == POSIXACL.user || linux == POSIXACL.group {
                if qual >= 0 {
                    id = UInt32(qual)
                } else if let name, let resolved = names.id(String(cString: name), user: linux == POSIXACL.user) {
                    id = resolved
                } else {
                    unresolved.append(name.map { String(cString: $0) } ?? "?")
                    continue
                }
            }
            entries.append(POSIXACL.Entry(tag: linux, perm: UInt16(perm & 7), id: id))
        }
        entries.sort { ($0.tag, $0.id) < ($1.tag, $1.id) }
        let acl = POSIXACL(entries: entries)
        if type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && acl.isEquivalentToMode { return nil }
        return entries.isEmpty ? nil : acl
    }
}
