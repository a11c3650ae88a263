import GuestFSBlock

/// XFS ("xfs").
///
/// Layout: the primary superblock at 0, big-endian (Linux fs/xfs/libxfs/xfs_format.h,
/// `struct xfs_dsb`): magic "XFSB", sb_blocksize u32 at 4, sb_dblocks u64 at 8, sb_uuid at 32,
/// sb_rextsize u32 at 80, sb_agblocks u32 at 84, sb_agcount u32 at 88, sb_sectsize u16 at 102,
/// sb_inodesize u16 at 104, sb_fname[12] at 108, then the log2 bytes sb_blocklog (120),
/// sb_sectlog (121), sb_inodelog (122), sb_inopblog (123), sb_imax_pct at 127.
/// Checks as libblkid superblocks/xfs.c `xfs_verify_sb` (sizes and their logs agree, the data
/// block count fits the allocation groups); the realtime extent size product is 32-bit there and
/// wraps, mirrored with `&*`. blkid 2.38 does not check the v5 superblock CRC, so neither do we.
enum XfsProbe {
    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let sb = r.bytes(0, 160), sb.has([UInt8](ascii: "XFSB"), at: 0) else { return .noMatch }
        let blockSize = sb.be32(4), dblocks = sb.be64(8), rextSize = sb.be32(80)
        let agBlocks = sb.be32(84), agCount = sb.be32(88)
        let sectSize = UInt32(sb.be16(102)), inodeSize = UInt32(sb.be16(104))
        let blockLog = Int(sb.u8(120)), sectLog = Int(sb.u8(121)), inodeLog = Int(sb.u8(122)), inopbLog = Int(sb.u8(123))
        guard agCount > 0,
              (512 ... 32768).contains(sectSize), (9 ... 15).contains(sectLog), sectSize == 1 << sectLog,
              (512 ... 65536).contains(blockSize), (9 ... 16).contains(blockLog), blockSize == 1 << blockLog,
              (256 ... 2048).contains(inodeSize), (8 ... 11).contains(inodeLog), inodeSize == 1 << inodeLog,
              blockLog - inodeLog == inopbLog,
              (4096 ... 1 << 30).contains(rextSize &* blockSize),
              sb.u8(127) <= 100,
              dblocks != 0,
              dblocks <= UInt64(agCount) * UInt64(agBlocks),
              dblocks >= UInt64(agCount - 1) * UInt64(agBlocks) + 64
        else { return .noMatch }
        return .match(label: ProbeText.label(sb.slice(108, 12)), uuid: ProbeText.uuid(sb.slice(32, 16)))
    }
}
