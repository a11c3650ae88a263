/// A directory small enough to live inside its inode ("XFS Algorithms & Data Structures"
/// §19.1 "Short Form Directories"; xfs_da_format.h `xfs_dir2_sf_hdr`, `xfs_dir2_sf_entry`).
///
/// Header: count (u8), i8count (u8), parent inode (4 bytes, or 8 when i8count > 0: then
/// every inode number in the fork is 8 bytes). Entries: namelen (u8), offset (be16, the
/// entry's place in a block directory, for readdir cookies), name, the ftype byte when the
/// filesystem has ftype, inode number (4 or 8 bytes). "." and ".." are not stored.
/// Bounded by construction: count is one byte and every field read is checked.
struct XFSDirectoryShortform {
    let parent: UInt64
    let entries: [XFSDirectoryEntry]

    init(_ fork: [UInt8], inode: UInt64, geometry: XFSGeometry) throws {
        let b = XFSBytes(fork, structure: "shortform directory of inode \(inode)")
        let count = Int(try b.u8(0))
        let wide = try b.u8(1) != 0
        let inoSize = wide ? 8 : 4
        func ino(_ at: Int) throws -> UInt64 { wide ? try b.u64(at) : UInt64(try b.u32(at)) }
        parent = try ino(2)
        guard geometry.plausibleInode(parent) else { throw b.damaged("parent inode \(parent) is not in the filesystem") }
        var at = 2 + inoSize
        var list: [XFSDirectoryEntry] = []
        list.reserveCapacity(count)
        var lastOffset = -1
        // count is one byte, so the loop is bounded; every field read is bounds-checked.
        for i in 0 ..< count {
            let nameLength = Int(try b.u8(at))
            guard nameLength > 0 else { throw b.damaged("entry \(i) at byte \(at) has an empty name") }
            // xfs_dir2_sf_verify: offsets increase, so they can serve as readdir cookies.
            let offset = Int(try b.u16(at + 1))
            guard offset > lastOffset else { throw b.damaged("entry \(i) at byte \(at) has offset \(offset), not above \(lastOffset)") }
            lastOffset = offset
            let name = try b.slice(at + 3, nameLength)
            var next = at + 3 + nameLength
            var ftype: UInt8?
            if geometry.hasFtype { ftype = try b.u8(next); next += 1 }
            let number = try ino(next)
            guard geometry.plausibleInode(number) else { throw b.damaged("entry \(i) at byte \(at) names inode \(number), not in the filesystem") }
            list.append(XFSDirectoryEntry(name: name, inode: number, fileType: ftype, cookie: UInt64(offset) >> 3))
            at = next + inoSize
        }
        entries = list
    }

    func lookup(_ name: [UInt8], caseFold: Bool) -> XFSDirectoryEntry? {
        if let exact = entries.first(where: { $0.name == name }) { return exact }
        return caseFold ? entries.first { XFSNameHash.equal($0.name, name, caseFold: true) } : nil
    }
}
