import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

/// Where a backup superblock lies: the first block of block group 1, which mke2fs always gives
/// a backup (sparse_super keeps groups 0, 1 and powers of 3, 5, 7; sparse_super2 groups 1 and
/// the last). Group 1 starts at blocks_per_group + first_data_block, and mke2fs's default
/// blocks_per_group is 8 × the block size, so e2fsck's get_backup_sb tries exactly these:
/// 8193 for 1 KiB blocks (first_data_block 1), 16384 for 2 KiB, 32768 for 4 KiB, and so on.
struct BackupSuperblock: Sendable, Equatable {
    let block: UInt64
    let blockSize: UInt64
    var byteOffset: UInt64 { block * blockSize }
}

extension Ext2Filesystem {
    /// Block sizes e2fsck tries (EXT2_MIN_BLOCK_SIZE to EXT2_MAX_BLOCK_SIZE).
    static let backupBlockSizes: [UInt64] = [1024, 2048, 4096, 8192, 16384, 32768, 65536]

    /// Whether an open failed because the primary superblock is unusable, the cases in which
    /// e2fsck tries the backups (e2fsck/unix.c: bad magic, bad checksum, corrupt superblock).
    static func isPrimarySuperblockDamage(_ error: ImageError) -> Bool {
        guard error.structure == "ext superblock" else { return false }
        if error.reason == badMagicReason { return true }
        guard let code = (error.underlying?.error as? Ext2Error)?.code else { return false }
        return code == Int(EXT2_ET_BAD_MAGIC) || code == Int(EXT2_ET_SB_CSUM_INVALID)
            || code == Int(EXT2_ET_CORRUPT_SUPERBLOCK) || code == Int(EXT2_ET_REV_TOO_HIGH)
    }

    /// The first backup superblock that carries the ext magic and that libext2fs opens
    /// read-only, trying each block size in turn; nil when none does.
    static func findBackupSuperblock(on device: any BlockDevice) -> BackupSuperblock? {
        for blockSize in backupBlockSizes {
            let block = blockSize * 8 + (blockSize == 1024 ? 1 : 0)
            let candidate = BackupSuperblock(block: block, blockSize: blockSize)
            guard candidate.byteOffset + 1024 <= device.size,
                  let magic = try? device.readBytes(at: candidate.byteOffset + 56, count: 2),
                  magic == [0x53, 0xEF] else { continue }
            // The backup must describe this block size (s_log_block_size at +24).
            guard let log = try? device.readBytes(at: candidate.byteOffset + 24, count: 4),
                  UInt64(1024) << UInt64(min(log[0], 6)) == blockSize, log[1] == 0, log[2] == 0, log[3] == 0 else { continue }
            if let trial = try? Ext2Filesystem(opening: device, writable: false, superblock: candidate) {
                try? trial.close()
                return candidate
            }
        }
        return nil
    }

    /// Why an open fails when the primary superblock has no ext magic.
    static let badMagicReason = "no ext2/ext3/ext4 filesystem found (bad magic)"

    static func backupWarning(device: any BlockDevice, primary: ImageError, backup: BackupSuperblock) -> String {
        "\(device.displayName): the primary superblock is damaged (\(primary.reason)); using the backup superblock at block \(backup.block) (block size \(backup.blockSize)), as e2fsck -b \(backup.block) -B \(backup.blockSize) would, read-only and without journal recovery"
    }
}
