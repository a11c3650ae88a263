import GuestFSBlock
import GuestFSFilesystem

/// Attributes small enough to live in the inode's attribute fork ("XFS Algorithms & Data
/// Structures" §20.1 "Short Form Attributes"; xfs_da_format.h `xfs_attr_sf_hdr`,
/// `xfs_attr_sf_entry`): totsize (be16, header included), count (u8), padding; then each
/// entry is namelen, valuelen, flags (u8 each), the name and the value.
enum XFSAttributeShortform {
    static func parse(_ fork: [UInt8], inode: UInt64) throws -> [XFSRawAttribute] {
        let b = XFSBytes(fork, structure: "shortform attributes of inode \(inode)")
        let total = Int(try b.u16(0))
        let count = Int(try b.u8(2))
        guard total >= 4, total <= b.count else { throw b.damaged("totsize \(total) does not fit the \(b.count)-byte fork") }
        let area = XFSBytes(Array(fork[0 ..< total]), structure: b.structure)
        var at = 4
        var out: [XFSRawAttribute] = []
        // count is one byte; each entry moves at least 3 bytes on within totsize.
        for i in 0 ..< count {
            let nameLength = Int(try area.u8(at)), valueLength = Int(try area.u8(at + 1)), flags = try area.u8(at + 2)
            guard nameLength > 0 else { throw area.damaged("entry \(i) at byte \(at) has an empty name") }
            let name = try area.slice(at + 3, nameLength)
            let value = try area.slice(at + 3 + nameLength, valueLength)
            out.append(XFSRawAttribute(flags: flags, name: name, value: .local(value)))
            at += 3 + nameLength + valueLength
        }
        return out
    }
}
