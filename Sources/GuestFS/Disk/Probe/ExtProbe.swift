import GuestFSBlock

/// ext2, ext3, ext4 and ext3/4 external journals ("jbd").
///
/// Layout: the superblock at byte 1024, magic 0xEF53 at +0x38 (Linux
/// Documentation/filesystems/ext4/super.rst): s_feature_compat +0x5C, s_feature_incompat +0x60,
/// s_feature_ro_compat +0x64, s_uuid +0x68 (16), s_volume_name +0x78 (16).
/// s_flags +0x160 (bit 0x4: test_fs). Which name a superblock gets follows libblkid 2.38
/// superblocks/ext.c, tried in this order:
/// - ext4dev: not a journal device, and flagged test_fs;
/// - ext4: not a journal device, not test_fs, and some feature ext3 does not know;
/// - ext3: a journal, and only the features ext3 knows;
/// - ext2: no journal, and only the features ext2 knows (so not needs_recovery);
/// - jbd: an external journal device (incompat JOURNAL_DEV).
/// A superblock matching none of these (no journal but needs_recovery) is not ext at all, and a
/// test_fs ext2 or ext3 matches twice (ext4dev and ext2/3), which blkid calls ambivalent. blkid 2.38 does not check the superblock checksum, so neither do we.
enum ExtProbe {
    static let superblockOffset: UInt64 = 1024
    static let compatHasJournal: UInt32 = 0x0004
    static let incompatFiletype: UInt32 = 0x0002
    static let incompatRecover: UInt32 = 0x0004
    static let incompatJournalDevice: UInt32 = 0x0008
    static let incompatMetaBG: UInt32 = 0x0010
    /// EXT2_FLAGS_TEST_FILESYS in s_flags.
    static let flagTestFilesystem: UInt32 = 0x0004
    /// sparse_super | large_file | btree_dir: the read-only features ext2 and ext3 know.
    static let roCompatKnownToExt3: UInt32 = 0x0001 | 0x0002 | 0x0004
    static let incompatKnownToExt2: UInt32 = incompatFiletype | incompatMetaBG
    static let incompatKnownToExt3: UInt32 = incompatFiletype | incompatRecover | incompatMetaBG

    struct Features {
        let compat, incompat, roCompat: UInt32
        let superblock: ProbeBytes
        var isTestFilesystem: Bool { superblock.le32(0x160) & flagTestFilesystem != 0 }
    }

    /// ext_get_super: 0x200 bytes of superblock with the magic in place.
    static func superblock(_ r: ProbeReader) -> Features? {
        guard let sb = r.bytes(superblockOffset, 0x200), sb.u8(0x38) == 0x53, sb.u8(0x39) == 0xEF else { return nil }
        return Features(compat: sb.le32(0x5C), incompat: sb.le32(0x60), roCompat: sb.le32(0x64), superblock: sb)
    }

    /// ext_get_info: the label (when s_volume_name is not empty) and the UUID.
    static func info(_ f: Features) -> ProbeResult {
        .match(label: ProbeText.label(f.superblock.slice(0x78, 16)), uuid: ProbeText.uuid(f.superblock.slice(0x68, 16)))
    }

    static func probeExt4Dev(_ r: ProbeReader) -> ProbeResult {
        guard let f = superblock(r), f.incompat & incompatJournalDevice == 0, f.isTestFilesystem else { return .noMatch }
        return info(f)
    }

    static func probeExt4(_ r: ProbeReader) -> ProbeResult {
        guard let f = superblock(r), f.incompat & incompatJournalDevice == 0, !f.isTestFilesystem else { return .noMatch }
        guard f.roCompat & ~roCompatKnownToExt3 != 0 || f.incompat & ~incompatKnownToExt3 != 0 else { return .noMatch }
        return info(f)
    }

    static func probeExt3(_ r: ProbeReader) -> ProbeResult {
        guard let f = superblock(r), f.compat & compatHasJournal != 0,
              f.roCompat & ~roCompatKnownToExt3 == 0, f.incompat & ~incompatKnownToExt3 == 0 else { return .noMatch }
        return info(f)
    }

    static func probeExt2(_ r: ProbeReader) -> ProbeResult {
        guard let f = superblock(r), f.compat & compatHasJournal == 0,
              f.roCompat & ~roCompatKnownToExt3 == 0, f.incompat & ~incompatKnownToExt2 == 0 else { return .noMatch }
        return info(f)
    }

    static func probeJournalDevice(_ r: ProbeReader) -> ProbeResult {
        guard let f = superblock(r), f.incompat & incompatJournalDevice != 0 else { return .noMatch }
        return info(f)
    }
}
