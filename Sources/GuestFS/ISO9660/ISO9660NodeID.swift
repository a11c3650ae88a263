import GuestFSBlock
import GuestFSFilesystem

/// Node ids of the ISO 9660 driver: the byte offset on the device of the directory record that
/// describes the node. ISO 9660 has no inode table; a record's place is what names a file, as
/// the kernel's isofs_get_ino(block, offset) does.
///
/// - A file's id is the offset of its (first, for a multi-extent file) record in its parent
///   directory's extent.
/// - A directory's id is the offset of the "." record at the start of its own extent, as the
///   kernel's isofs_normalize_block_and_offset does: a directory then has one id however it is
///   reached (from its parent's record, through a Rock Ridge CL link to a relocated directory,
///   or as the root), and its attributes come from that "." record, which RRIP (4.1.1) requires
///   to carry the directory's PX. The root's id is the "." record its volume descriptor's root
///   record points at (the PVD's, or the Joliet SVD's when Joliet names are used).
///
/// Ids are stable across opens and unique: two records cannot share an offset, and a "." record
/// is never a file's record.
enum ISO9660NodeID {
    /// The id of the directory whose extent starts at logical block `block`.
    static func directory(block: UInt64, blockSize: UInt32, device: String, from record: UInt64) throws -> UInt64 {
        try ISO9660Math.multiply(block, UInt64(blockSize),
                                 ImageError(path: device, offset: record, structure: "ISO 9660 directory record",
                                            reason: "directory block \(block) overflows a byte offset", errno: .ioError))
    }

    /// The id a listed record group gets: its directory's "." for a directory, the CL target for
    /// a Rock Ridge placeholder of a relocated directory, the first record's offset otherwise.
    static func of(_ first: ISO9660DirectoryRecord, rockRidge: RockRidgeInfo?, blockSize: UInt32, device: String) throws -> UInt64 {
        if let cl = rockRidge?.childLink {
            return try directory(block: UInt64(cl), blockSize: blockSize, device: device, from: first.offset)
        }
        if first.isDirectory { return try first.dataOffset(blockSize: blockSize, device: device) }
        return first.offset
    }
}
