import GuestFSBlock
import GuestFSFilesystem

/// What a journal recovery did, for messages and tests.
package struct JournalReplayReport: Sendable {
    /// Transactions replayed.
    package let transactions: UInt32
    /// Filesystem blocks overwritten from the log.
    package let blocksWritten: Int
    /// Logged copies skipped because a revoke record covered them.
    package let revokedCopies: Int
    /// What was wrong with the log; empty when it simply ended.
    package let problems: [String]
    /// The filesystem superblock now says "errors" (a commit block failed its checksum, or the
    /// journal carried an error number), as e2fsck leaves it.
    package let markedWithErrors: Bool
    /// The filesystem superblock no longer says "clean" (part of the recovery failed), as
    /// e2fsck leaves it to force a full check.
    package let markedNotClean: Bool
    /// The transaction ID the journal restarts at.
    package let nextSequence: UInt32
}

/// Writes a recovery plan to a device and leaves the journal and the filesystem superblock as
/// e2fsck's recovery leaves them (e2fsck/journal.c: recover_ext3_journal,
/// e2fsck_journal_release, e2fsck_clear_recover):
///
/// 1. every planned block, from the log, with the magic restored in escaped blocks; flush;
/// 2. the journal superblock: `s_start` 0, `s_sequence` the next transaction ID, `s_errno` 0,
///    checksum recomputed; flush;
/// 3. the primary filesystem superblock: `needs_recovery` cleared, `s_state` updated for
///    errors, checksum recomputed with metadata_csum; flush.
///
/// The target is the device itself for `--rw`, or a `MemoryOverlayDevice` over it otherwise.
enum JournalReplay {
    static func apply(_ plan: JournalRecoveryPlan, log: JournalLog, superblock: JournalSuperblock,
                      to target: any BlockDevice) throws -> JournalReplayReport {
        let blockSize = UInt64(log.blockSize)
        for write in plan.writes {
            var data = try log.read(write.journalBlock)
            if write.escaped {
                // JBD2_FLAG_ESCAPE: the block began with the magic, which the log zeroed
                // (journal.rst "Data Block").
                var b = BigEndianBytes(data)
                b.setU32(JournalBlockHeader.magic, at: 0)
                data = b.bytes
            }
            try target.writeBytes(data, at: write.fsBlock * blockSize)
        }
        try target.flush()

        let journalErrno = superblock.errno
        let journalSuper = superblock.recovered(nextSequence: plan.nextSequence, clearErrno: journalErrno != 0)
        try target.writeBytes(journalSuper, at: try log.deviceOffset(0))
        try target.flush()

        let withErrors = plan.failedCommit != nil || journalErrno != 0
        try ExtSuperblockPatch.clearRecovery(on: target, markErrors: withErrors, markNotClean: plan.hadError)
        try target.flush()
        return JournalReplayReport(transactions: plan.transactionCount, blocksWritten: plan.writes.count,
                                   revokedCopies: plan.revokedCopies, problems: plan.problems,
                                   markedWithErrors: withErrors, markedNotClean: plan.hadError,
                                   nextSequence: plan.nextSequence)
    }
}

/// The few fields of the primary ext superblock that recovery reads and changes, read from
/// the device directly (libext2fs is opened only after recovery).
///
/// Layout: the ext4 disk layout, "The Super Block" (Linux Documentation/filesystems/ext4/
/// super.rst), little-endian, 1024 bytes at byte 1024 of the filesystem.
struct ExtSuperblockPatch {
    static let offset: UInt64 = 1024
    static let size = 1024
    // Field offsets within the superblock, super.rst.
    static let offsetBlocksCountLow = 0x4, offsetFirstDataBlock = 0x14, offsetLogBlockSize = 0x18
    static let offsetState = 0x3A, offsetFeatureCompat = 0x5C, offsetFeatureIncompat = 0x60
    static let offsetFeatureRoCompat = 0x64, offsetJournalUUID = 0xD0, offsetJournalInode = 0xE0
    static let offsetJournalDevice = 0xE4, offsetBlocksCountHigh = 0x150, offsetChecksum = 0x3FC
    // s_state bits, super.rst: EXT2_VALID_FS "cleanly umounted", EXT2_ERROR_FS "errors detected".
    static let stateValid: UInt16 = 0x1
    static let stateErrors: UInt16 = 0x2
    static let incompat64Bit: UInt32 = 0x80
    static let roCompatMetadataCsum: UInt32 = 0x400

    var bytes: [UInt8]

    static func read(from device: any BlockDevice) throws -> ExtSuperblockPatch {
        ExtSuperblockPatch(bytes: try device.readBytes(at: offset, count: size))
    }

    private var le: LittleEndianBytes { LittleEndianBytes(bytes) }
    var compatFeatures: UInt32 { le.u32(Self.offsetFeatureCompat) }
    var incompatFeatures: UInt32 { le.u32(Self.offsetFeatureIncompat) }
    var roCompatFeatures: UInt32 { le.u32(Self.offsetFeatureRoCompat) }
    var state: UInt16 { le.u16(Self.offsetState) }
    var journalInode: UInt32 { le.u32(Self.offsetJournalInode) }
    var journalDevice: UInt32 { le.u32(Self.offsetJournalDevice) }
    var hasJournalUUID: Bool { !le.isZero(Self.offsetJournalUUID, 16) }
    var needsRecovery: Bool { incompatFeatures & Ext2Superblock.incompatRecover != 0 }
    var hasJournal: Bool { compatFeatures & Ext2Superblock.compatHasJournal != 0 }
    /// 1024 << s_log_block_size, or nil when the exponent is beyond ext4's 64 KiB limit.
    var blockSize: Int? {
        let log = le.u32(Self.offsetLogBlockSize)
        return log <= 6 ? 1024 << Int(log) : nil
    }
    var blocksCount: UInt64 {
        let high = incompatFeatures & Self.incompat64Bit != 0 ? UInt64(le.u32(Self.offsetBlocksCountHigh)) << 32 : 0
        return high | UInt64(le.u32(Self.offsetBlocksCountLow))
    }
    var firstDataBlock: UInt64 { UInt64(le.u32(Self.offsetFirstDataBlock)) }

    private mutating func setLE(_ value: UInt64, at offset: Int, width: Int) {
        for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    /// Clears `needs_recovery` on `device`'s primary superblock and updates `s_state` the way
    /// e2fsck_clear_recover and recover_ext3_journal do; recomputes the metadata_csum checksum
    /// (crc32c seeded with ~0 over everything before `s_checksum`, ext2fs_superblock_csum_set).
    static func clearRecovery(on device: any BlockDevice, markErrors: Bool, markNotClean: Bool) throws {
        var sb = try read(from: device)
        sb.setLE(UInt64(sb.incompatFeatures & ~Ext2Superblock.incompatRecover), at: offsetFeatureIncompat, width: 4)
        var state = sb.state
        if markNotClean { state &= ~stateValid }
        if markErrors { state |= stateErrors }
        sb.setLE(UInt64(state), at: offsetState, width: 2)
        if sb.roCompatFeatures & roCompatMetadataCsum != 0 {
            let checksum = sb.bytes.withUnsafeBytes { JournalChecksum.crc32c(~0, UnsafeRawBufferPointer(rebasing: $0[..<offsetChecksum])) }
            sb.setLE(UInt64(checksum), at: offsetChecksum, width: 4)
        }
        try device.writeBytes(sb.bytes, at: offset)
    }
}
