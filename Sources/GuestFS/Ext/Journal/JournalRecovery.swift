import GuestFSBlock
import GuestFSFilesystem

/// What replaying a journal does to the filesystem: the blocks to write and the state the
/// journal is left in. Computed without writing anything; `JournalReplay` applies it.
package struct JournalRecoveryPlan: Sendable {
    /// One filesystem block to overwrite with a block of the log.
    package struct BlockWrite: Sendable, Equatable {
        package let fsBlock: UInt64
        /// Where the data is in the journal.
        package let journalBlock: UInt32
        /// The log copy had its magic zeroed (JBD2_FLAG_ESCAPE): restore it when writing.
        package let escaped: Bool
    }

    /// The newest copy of every block the replayed transactions logged, by filesystem block.
    package internal(set) var writes: [BlockWrite] = []
    /// The first transaction in the log (`s_sequence`).
    package let firstTransaction: UInt32
    /// The first transaction *not* replayed: the log ends before it.
    package internal(set) var endTransaction: UInt32
    /// Copies skipped because a later revoke record covers them.
    package internal(set) var revokedCopies = 0
    /// What was wrong with the log, one line each; empty for a log that simply ended.
    package internal(set) var problems: [String] = []
    /// A transaction whose commit block failed its checksum: the log ends there, and e2fsck
    /// marks the filesystem as having errors (PR_0_JNL_TXN_CORRUPT).
    package internal(set) var failedCommit: UInt32? = nil
    /// Part of the recovery failed (a bad data block, a block outside the filesystem, an
    /// unreadable revoke block): e2fsck then clears the valid flag to force a full check.
    package internal(set) var hadError = false

    /// Transactions replayed.
    package var transactionCount: UInt32 { endTransaction &- firstTransaction }
    /// The transaction ID the journal restarts at (jbd2_journal_recover: `++end_transaction`).
    package var nextSequence: UInt32 { endTransaction &+ 1 }
}

/// The three passes of jbd2 recovery over one journal (fs/jbd2/recovery.c in Linux, copied as
/// e2fsck/recovery.c in e2fsprogs; the format is journal.rst, "Journal (jbd2)"):
///
/// 1. SCAN walks the log from `s_start`, transaction by transaction, and finds where it ends:
///    the first block that is not a jbd2 block of the expected transaction ID, or a commit block
///    whose checksum fails.
/// 2. REVOKE walks the same transactions again and collects their revoke records.
/// 3. REPLAY walks them a third time and, for every tag not revoked by the same or a later
///    transaction, records the log block as the new contents of the tagged filesystem block.
///
/// Every number from disk is checked: the walk is bounded by the length of the log (a log that
/// would go round forever stops), tags pointing outside the filesystem or into the journal
/// itself are skipped, and the revoke table is capped.
struct JournalRecovery {
    let log: JournalLog
    let superblock: JournalSuperblock
    let format: JournalTagFormat
    let fsBlockCount: UInt64
    let seed: UInt32

    /// More distinct revoked blocks than this is not a journal a kernel wrote: 2²⁰ entries,
    /// tens of MiB at most.
    static let revokeCapacity = 1 << 20

    init(log: JournalLog, superblock: JournalSuperblock, fsBlockCount: UInt64) {
        self.log = log
        self.superblock = superblock
        self.format = JournalTagFormat(superblock)
        self.fsBlockCount = fsBlockCount
        self.seed = superblock.checksumSeed
    }

    /// Runs the three passes and returns what replay must write.
    func plan() -> JournalRecoveryPlan {
        var plan = JournalRecoveryPlan(firstTransaction: superblock.sequence, endTransaction: superblock.sequence)
        guard !superblock.isClean else { return plan }
        scan(&plan)
        var revokes = JournalRevokeTable(capacity: Self.revokeCapacity)
        collectRevokes(&plan, into: &revokes)
        replay(&plan, revokes: revokes)
        return plan
    }

    // MARK: - The walk shared by the passes

    /// Log blocks between `s_first` and `j_last`, which the walk wraps around.
    private var logLength: UInt32 { superblock.lastLogBlock - superblock.first }

    /// The journal block `count` blocks after `block`, wrapping from `j_last` to `s_first`.
    private func advance(_ block: UInt32, by count: Int) -> UInt32 {
        let offset = (UInt64(block - superblock.first) + UInt64(count)) % UInt64(logLength)
        return superblock.first + UInt32(offset)
    }

    /// One metadata block met on the walk.
    private enum Step {
        case descriptor(block: [UInt8], at: UInt32, tags: [JournalBlockTag])
        case revoke(block: [UInt8], at: UInt32)
        case commit(block: [UInt8], at: UInt32)
        /// The log ends here (no magic, another transaction ID, an unknown block type).
        case end
        /// The walk has covered as many blocks as the log holds without ending.
        case exhausted
        /// The block could not be read.
        case unreadable(at: UInt32, error: any Error)
    }

    /// Walks the transactions `[sequence, until)` from `s_start` (until nil: as far as the log
    /// goes), calling `visit` for each metadata block with the transaction it belongs to.
    /// `visit` returns false to stop. The walk never covers more blocks than the log holds.
    private func walk(until end: UInt32?, _ visit: (Step, UInt32) -> Bool) {
        var next = superblock.start
        var transaction = superblock.sequence
        var consumed = 0
        while true {
            if let end, !JournalRevokeTable.isAfter(end, transaction) { return }
            guard consumed < Int(logLength) else {
                _ = visit(.exhausted, transaction)
                return
            }
            let at = next
            let block: [UInt8]
            do { block = try log.read(at) } catch {
                _ = visit(.unreadable(at: at, error: error), transaction)
                return
            }
            consumed += 1
            next = advance(next, by: 1)
            let b = BigEndianBytes(block)
            let header = JournalBlockHeader(b)
            guard header.isJournalBlock, header.sequence == transaction else {
                _ = visit(.end, transaction)
                return
            }
            switch header.type {
            case .descriptor:
                let tags = format.tags(of: block)
                guard visit(.descriptor(block: block, at: at, tags: tags), transaction) else { return }
                consumed += tags.count
                next = advance(next, by: tags.count)
            case .revoke:
                guard visit(.revoke(block: block, at: at), transaction) else { return }
            case .commit:
                guard visit(.commit(block: block, at: at), transaction) else { return }
                transaction &+= 1
            default:
                _ = visit(.end, transaction)
                return
            }
        }
    }

    // MARK: - PASS_SCAN

    /// Finds the end of the log: `plan.endTransaction` becomes the first transaction without
    /// a valid commit block.
    private func scan(_ plan: inout JournalRecoveryPlan) {
        var lastCommitTime: UInt64 = 0
        // A descriptor or revoke block of this transaction failed its checksum: the commit
        // block's time tells a stale block left by lazy journal init (older) from damage.
        var suspectBlock: UInt32? = nil
        walk(until: nil) { step, transaction in
            switch step {
            case let .descriptor(block, at, _):
                if format.tailBytes > 0, !JournalBlockTail.checksumMatches(block, seed: seed), suspectBlock == nil {
                    suspectBlock = at
                }
                return true
            case let .revoke(block, at):
                if format.tailBytes > 0, !JournalBlockTail.checksumMatches(block, seed: seed), suspectBlock == nil {
                    suspectBlock = at
                }
                return true
            case let .commit(block, at):
                let commitTime = JournalCommitBlock(BigEndianBytes(block)).commitSeconds
                let stale = commitTime < lastCommitTime
                if format.tailBytes > 0, !JournalCommitBlock.checksumMatches(block, seed: seed) {
                    if !stale {
                        plan.failedCommit = transaction
                        plan.problems.append("transaction \(transaction): commit block (journal block \(at)) fails its checksum; "
                                             + "the log ends before it")
                    }
                    plan.endTransaction = transaction
                    return false
                }
                if let suspect = suspectBlock {
                    if !stale {
                        plan.hadError = true
                        plan.problems.append("transaction \(transaction): journal block \(suspect) fails its checksum; "
                                             + "the log ends before it")
                    }
                    plan.endTransaction = transaction
                    return false
                }
                lastCommitTime = commitTime
                plan.endTransaction = transaction &+ 1
                return true
            case .end:
                return false
            case .exhausted:
                plan.problems.append("the log runs on for more blocks than the journal holds; "
                                     + "replay stops before transaction \(transaction)")
                return false
            case let .unreadable(at, error):
                plan.hadError = true
                plan.problems.append("journal block \(at) cannot be read (\(ImageError.wrap(error).reason)); "
                                     + "the log ends before transaction \(transaction)")
                return false
            }
        }
    }

    // MARK: - PASS_REVOKE

    private func collectRevokes(_ plan: inout JournalRecoveryPlan, into revokes: inout JournalRevokeTable) {
        walk(until: plan.endTransaction) { step, transaction in
            guard case let .revoke(block, at) = step else { return true }
            guard let records = JournalRevokeBlock.records(of: block, format: format) else {
                plan.hadError = true
                plan.problems.append("transaction \(transaction): revoke block (journal block \(at)) has a bad record count; "
                                     + "the log ends before it")
                plan.endTransaction = transaction
                return false
            }
            for record in records where !revokes.revoke(record, in: transaction) {
                plan.hadError = true
                plan.problems.append("more than \(revokes.capacity) revoked blocks; the log ends before transaction \(transaction)")
                plan.endTransaction = transaction
                return false
            }
            return true
        }
    }

    // MARK: - PASS_REPLAY

    private func replay(_ plan: inout JournalRecoveryPlan, revokes: JournalRevokeTable) {
        var latest: [UInt64: JournalRecoveryPlan.BlockWrite] = [:]
        walk(until: plan.endTransaction) { step, transaction in
            guard case let .descriptor(_, at, tags) = step else { return true }
            var dataBlock = at
            for tag in tags {
                dataBlock = advance(dataBlock, by: 1)
                if revokes.isRevoked(tag.fsBlock, in: transaction) {
                    plan.revokedCopies += 1
                    continue
                }
                guard tag.fsBlock < fsBlockCount else {
                    plan.hadError = true
                    plan.problems.append("transaction \(transaction): journal block \(dataBlock) is tagged for block \(tag.fsBlock), "
                                         + "past the end of the filesystem (\(fsBlockCount) blocks); skipped")
                    continue
                }
                guard !log.contains(fsBlock: tag.fsBlock) else {
                    plan.hadError = true
                    plan.problems.append("transaction \(transaction): journal block \(dataBlock) is tagged for block \(tag.fsBlock), "
                                         + "which belongs to the journal itself; skipped")
                    continue
                }
                if format.tailBytes > 0 {
                    do {
                        let data = try log.read(dataBlock)
                        guard format.checksumMatches(tag, data: data, sequence: transaction, seed: seed) else {
                            plan.hadError = true
                            plan.problems.append("transaction \(transaction): data for block \(tag.fsBlock) (journal block \(dataBlock)) "
                                                 + "fails its checksum; skipped")
                            continue
                        }
                    } catch {
                        plan.hadError = true
                        plan.problems.append("journal block \(dataBlock) cannot be read (\(ImageError.wrap(error).reason)); skipped")
                        continue
                    }
                }
                latest[tag.fsBlock] = .init(fsBlock: tag.fsBlock, journalBlock: dataBlock, escaped: tag.isEscaped)
            }
            return true
        }
        plan.writes = latest.values.sorted { $0.fsBlock < $1.fsBlock }
    }
}
