import GuestFSBlock

/// Btrfs ("btrfs").
///
/// Layout: the btrfs on-disk format, "Superblock" (Linux fs/btrfs/accessors.h and
/// include/uapi/linux/btrfs_tree.h, `struct btrfs_super_block`): the primary copy at 64 KiB,
/// fsid at 0x20, magic "_BHRfS_M" at 0x40, the 256-byte label at 0x12B. Checks as libblkid
/// superblocks/btrfs.c: only the primary superblock counts (blkid -p ignores the backups at
/// 64 MiB and 256 GiB), and the device must hold 1 MiB. blkid 2.38 does not check the superblock
/// checksum, so neither do we.
enum BtrfsProbe {
    static let minimumSize: UInt64 = 1 << 20
    static let superblockOffset: UInt64 = 0x10000

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let sb = r.bytes(superblockOffset, 0x22B), sb.has([UInt8](ascii: "_BHRfS_M"), at: 0x40) else { return .noMatch }
        return .match(label: ProbeText.label(sb.slice(0x12B, 256)), uuid: ProbeText.uuid(sb.slice(0x20, 16)))
    }
}
