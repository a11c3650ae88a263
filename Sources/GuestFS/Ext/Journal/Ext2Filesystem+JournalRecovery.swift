import GuestFSBlock
import GuestFSFilesystem

/// Journal recovery at open: the policy of when and where a dirty journal is replayed.
///
/// libext2fs has no journal recovery (it lives in e2fsck), and fuse2fs refuses a filesystem
/// that needs it; a crashed VM's disk is exactly that. So before libext2fs opens the filesystem:
///
/// - journal clean (`needs_recovery` clear): nothing to do;
/// - internal journal, read-only: replay into a `MemoryOverlayDevice` over the device; the
///   filesystem is opened over the overlay, so every reader sees the recovered state and the
///   image keeps every byte (STYLE.md rule 6);
/// - internal journal, writable: replay into the device itself, flush, then open;
/// - external journal: writable is refused; read-only opens the device as it is, with a warning;
/// - a journal too damaged to replay (bad journal superblock): writable is refused; read-only
///   opens the device as it is, with a warning.
extension Ext2Filesystem {
    struct JournalRecoveryOutcome {
        let device: any BlockDevice
        let warnings: [String]
        let report: JournalReplayReport?
    }

    static func recoverJournal(device: any BlockDevice, writable: Bool) throws -> JournalRecoveryOutcome {
        let name = device.displayName
        let sb = try ExtSuperblockPatch.read(from: device)
        guard sb.needsRecovery else { return JournalRecoveryOutcome(device: device, warnings: [], report: nil) }
        guard let blockSize = sb.blockSize else {
            throw ImageError(path: name, offset: ExtSuperblockPatch.offset, structure: "ext superblock",
                             reason: "block size exponent out of range", errno: .invalidArgument)
        }

        // Refusing or going on without recovery: the same decision in every unusable case.
        func cannotReplay(_ reason: String) throws -> JournalRecoveryOutcome {
            if writable {
                throw ImageError(path: name, structure: "journal",
                                 reason: "filesystem needs journal recovery, but \(reason); not opened for writing",
                                 errno: .notSupported)
            }
            return JournalRecoveryOutcome(device: device, warnings: [
                "filesystem on \(name) needs journal recovery, but \(reason); opened without replaying it (data may be stale)",
            ], report: nil)
        }

        if sb.journalInode == 0 && (sb.hasJournalUUID || sb.journalDevice != 0) {
            return try cannotReplay("external journal not supported")
        }
        guard sb.hasJournal, sb.journalInode != 0 else {
            // needs_recovery without a journal: e2fsck clears the flag and forces a full check
            // (PR_0_JOURNAL_RECOVER_SET).
            let target = writable ? device : MemoryOverlayDevice(base: device, chunkSize: blockSize,
                                                                 maxBytes: UInt64(blockSize))
            try ExtSuperblockPatch.clearRecovery(on: target, markErrors: false, markNotClean: true)
            try target.flush()
            return JournalRecoveryOutcome(device: target, warnings: [
                "filesystem on \(name) is marked as needing journal recovery but has no journal; flag cleared"
                    + (writable ? "" : " in memory (image unchanged)"),
            ], report: nil)
        }

        // Map the journal inode as the filesystem is now, before replay (journal_bmap).
        let mapped: [BlockRun]?
        do {
            let plain = try Ext2Filesystem(opening: device, writable: false)
            defer { try? plain.close() }
            mapped = try plain.openFile(sb.journalInode).runs
        } catch let error as ImageError {
            return try cannotReplay("the journal inode \(sb.journalInode) cannot be read (\(error.reason))")
        }
        guard let runs = mapped else {
            return try cannotReplay("the journal inode \(sb.journalInode) is too fragmented to map")
        }
        let log = JournalLog(device: device, blockSize: blockSize, runs: runs, fsBlockCount: sb.blocksCount,
                             firstDataBlock: sb.firstDataBlock)
        guard log.mappedBlocks > 0 else { return try cannotReplay("the journal inode maps no blocks") }
        let superblock: JournalSuperblock
        do {
            superblock = try JournalSuperblock(try log.read(0), fsBlockSize: blockSize, mappedBlocks: log.mappedBlocks,
                                               offset: try log.deviceOffset(0))
        } catch let error as ImageError {
            return try cannotReplay("the journal superblock is damaged (\(error.reason))")
        }

        let plan = JournalRecovery(log: log, superblock: superblock, fsBlockCount: sb.blocksCount).plan()
        // Replay writes the planned blocks, the journal superblock and the ext superblock, and
        // no other: that bounds the overlay.
        let target: any BlockDevice = writable ? device
            : MemoryOverlayDevice(base: device, chunkSize: blockSize,
                                  maxBytes: UInt64(plan.writes.count + 2) * UInt64(blockSize))
        let report = try JournalReplay.apply(plan, log: log, superblock: superblock, to: target)
        var warnings = ["filesystem on \(name) needs journal recovery; replayed \(report.transactions) transaction"
                        + (report.transactions == 1 ? "" : "s")
                        + (writable ? " into the image" : " in memory (image unchanged)")]
        warnings += report.problems.map { "journal of \(name): \($0)" }
        if superblock.hasFastCommit {
            warnings.append("journal of \(name): fast-commit blocks, if any, were not replayed (not supported)")
        }
        return JournalRecoveryOutcome(device: target, warnings: warnings, report: report)
    }
}
