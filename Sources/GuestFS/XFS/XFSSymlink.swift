import GuestFSBlock
import GuestFSFilesystem

/// Symbolic link targets ("XFS Algorithms & Data Structures" §19.1 "Short Form Symbolic
/// Links", §19.2 "Extent Symbolic Links"): inline in the data fork, or in remote blocks which
/// on v5 start each mapping with `struct xfs_dsymlink_hdr` (xfs_format.h), verified as
/// xfs_symlink_read_verify and xfs_symlink_hdr_ok do.
enum XFSSymlink {
    /// XFS_SYMLINK_MAXLEN.
    static let maxLength = 1024
    /// "XSLM" (XFS_SYMLINK_MAGIC).
    static let magic: UInt32 = 0x5853_4C4D
    /// sizeof(struct xfs_dsymlink_hdr), and offsetof(sl_crc).
    static let headerSize = 56
    static let crcOffset = 12

    /// The target of symlink inode `inode` whose data fork holds `fork`.
    static func target(of inode: XFSInode, fork: XFSForkContents, geometry: XFSGeometry,
                       readBlocks: XFSBlockReader) throws -> [UInt8] {
        let name = "inode \(inode.number) symlink"
        guard inode.size > 0, inode.size <= UInt64(maxLength) else {
            throw XFSBytes([], structure: name).damaged("target length \(inode.size) is not within 1...\(maxLength)")
        }
        let length = Int(inode.size)
        switch fork {
        case .local(let bytes):
            guard bytes.count >= length else { throw XFSBytes(bytes, structure: name).damaged("inline target is cut short") }
            return Array(bytes[0 ..< length])
        case .extents(let extents):
            var target: [UInt8] = []
            for e in extents {
                guard target.count < length else { break }
                // Three blocks hold the longest target at the smallest block size (XFS_SYMLINK_MAPS).
                guard e.blockCount <= 3, !e.unwritten else {
                    throw XFSBytes([], structure: name).damaged("remote extent of \(e.blockCount) blocks is invalid")
                }
                let raw = try readBlocks(e.startBlock, UInt32(e.blockCount))
                let daddr = geometry.daddr(fsblock: e.startBlock) ?? 0
                let b = XFSBytes(raw, structure: "\(name) block \(e.startBlock)", deviceOffset: daddr << 9)
                var start = 0
                var chunk = raw.count
                if geometry.isV5 {
                    guard try b.u32(0) == magic else { throw b.damaged("bad magic (not XSLM)") }
                    guard XFSChecksum.verify(raw, crcOffset: crcOffset) else { throw b.damaged("CRC mismatch") }
                    guard try b.u32(4) == UInt32(target.count) else { throw b.damaged("offset \(try b.u32(4)) where \(target.count) was expected") }
                    guard try b.slice(16, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
                    guard try b.u64(32) == inode.number else { throw b.damaged("owner \(try b.u64(32)) is not the inode") }
                    guard try b.u64(40) == daddr else { throw b.damaged("blkno \(try b.u64(40)) is not the block's") }
                    chunk = Int(try b.u32(8))
                    guard chunk <= raw.count - headerSize else { throw b.damaged("\(chunk) bytes do not fit the block") }
                    start = headerSize
                }
                let n = min(chunk, length - target.count)
                target += try b.slice(start, n)
            }
            guard target.count == length else {
                throw XFSBytes([], structure: name).damaged("remote blocks hold \(target.count) of \(length) bytes")
            }
            return target
        }
    }
}
