import GuestFSBlock
import GuestFSFilesystem

/// The self-describing header every v5 metadata block carries ("XFS Algorithms & Data
/// Structures" §4 "Metadata Integrity", "Self Describing Metadata"): a CRC32C over the block,
/// the block's own 512-byte disk address, the owning inode and the filesystem's metadata UUID.
/// The field offsets differ per structure, so each decoder names its layout:
/// - xfs_dir3_blk_hdr (directory data/block blocks): magic 0, crc 4, blkno 8, lsn 16, uuid 24, owner 40;
/// - xfs_da3_blkinfo (da nodes, directory leaves, attribute leaves): forw 0, back 4, magic 8,
///   crc 12, blkno 16, lsn 24, uuid 32, owner 48;
/// - xfs_attr3_rmt_hdr (remote attribute values): magic 0, offset 4, bytes 8, crc 12, uuid 16,
///   owner 32, blkno 40, lsn 48.
struct XFSMetadataHeader {
    let crc: Int, blkno: Int, uuid: Int, owner: Int

    static let dir3Block = XFSMetadataHeader(crc: 4, blkno: 8, uuid: 24, owner: 40)
    static let da3Blkinfo = XFSMetadataHeader(crc: 12, blkno: 16, uuid: 32, owner: 48)
    static let attr3Remote = XFSMetadataHeader(crc: 12, blkno: 40, uuid: 16, owner: 32)

    /// Checks `block` (already known to carry a v5 magic) against where it was read from
    /// (`fsblock`) and who owns it (`inode`); throws naming the first field that is wrong.
    func verify(_ block: XFSBytes, fsblock: UInt64, inode: UInt64, geometry: XFSGeometry) throws {
        guard XFSChecksum.verify(block.bytes, crcOffset: crc) else { throw block.damaged("CRC mismatch") }
        guard let daddr = geometry.daddr(fsblock: fsblock) else { throw block.damaged("block \(fsblock) is outside the filesystem") }
        let stored = try block.u64(blkno)
        guard stored == daddr else { throw block.damaged("header names disk address \(stored), read from \(daddr)") }
        guard try block.slice(uuid, 16) == geometry.metaUUID else { throw block.damaged("header UUID is not the filesystem's") }
        let ownerIno = try block.u64(owner)
        guard ownerIno == inode else { throw block.damaged("header names owner inode \(ownerIno), not \(inode)") }
    }
}
