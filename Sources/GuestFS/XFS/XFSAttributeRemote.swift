/// A value too big for its leaf, kept in attribute-fork blocks of its own ("XFS Algorithms &
/// Data Structures" §20.4 "Remote Values"; xfs_da_format.h `xfs_attr3_rmt_hdr`,
/// xfs_attr_remote.c `xfs_attr_rmtval_copyout`).
///
/// v4: the value's bytes fill ceil(length / blocksize) blocks. v5: each filesystem block
/// starts with a 56-byte header (magic "XARM", offset and byte count of the piece it holds,
/// CRC, UUID, owner, its own daddr, LSN), so a value takes ceil(length / (blocksize − 56)).
enum XFSAttributeRemote {
    static func read(block: UInt32, length: UInt32, map: XFSForkMap, inode: UInt64, geometry: XFSGeometry) throws -> [UInt8] {
        let structure = "remote attribute value at attribute block \(block) of inode \(inode)"
        guard length <= UInt32(XFSAttributeFormat.maxValueSize) else {
            throw ImageError(structure: structure, reason: "value length \(length) is over 64 KiB", errno: .ioError)
        }
        let total = Int(length)
        let blockSize = Int(geometry.blockSize)
        guard blockSize > XFSAttributeFormat.remoteHeaderSize else {
            throw ImageError(structure: structure, reason: "block size \(blockSize) cannot hold a remote value", errno: .ioError)
        }
        if !geometry.isV5 {
            let blocks = (total + blockSize - 1) / blockSize
            guard blocks > 0 else { return [] }
            return Array(try map.readBlocks(UInt64(block), count: UInt32(blocks), structure: structure).bytes.prefix(total))
        }
        let payload = blockSize - XFSAttributeFormat.remoteHeaderSize
        var out: [UInt8] = []
        out.reserveCapacity(total)
        var logical = UInt64(block)
        while out.count < total {
            let (raw, fsb) = try map.readBlocks(logical, count: 1, structure: structure)
            let b = XFSBytes(raw, structure: structure, deviceOffset: geometry.byteOffset(fsblock: fsb))
            guard try b.u32(0) == XFSAttributeFormat.remoteMagic else { throw b.damaged("remote value block \(logical) has a bad magic") }
            try XFSMetadataHeader.attr3Remote.verify(b, fsblock: fsb, inode: inode, geometry: geometry)
            let offset = Int(try b.u32(4)), bytes = Int(try b.u32(8))
            let want = min(payload, total - out.count)
            guard offset == out.count, bytes == want else {
                throw b.damaged("remote value block \(logical) holds bytes \(offset)+\(bytes), expected \(out.count)+\(want)")
            }
            out += try b.slice(XFSAttributeFormat.remoteHeaderSize, bytes)
            logical += 1
        }
        return out
    }
}
