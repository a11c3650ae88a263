import GuestFSBlock
import GuestFSFilesystem

/// The revoke records of a revoke block.
///
/// Layout: journal.rst, "Revocation Block" (`jbd2_journal_revoke_header_t`): the block header,
/// `r_count` at 0xC (bytes used in the block, header included), then block numbers of 8 bytes
/// with 64-bit journals or 4 otherwise; with csum v2/v3 a checksum tail ends the block.
enum JournalRevokeBlock {
    static let offsetCount = 0xC
    static let headerSize = 16

    /// The blocks the revoke block names, or nil when `r_count` runs into the checksum tail
    /// or past the block (scan_revoke_records refuses those with -EINVAL).
    static func records(of block: [UInt8], format: JournalTagFormat) -> [UInt64]? {
        let b = BigEndianBytes(block)
        let used = Int(b.u32(offsetCount))
        guard used <= block.count - format.tailBytes else { return nil }
        let width = format.is64Bit ? 8 : 4
        var records: [UInt64] = []
        var offset = headerSize
        while offset + width <= used {
            records.append(format.is64Bit ? b.u64(offset) : UInt64(b.u32(offset)))
            offset += width
        }
        return records
    }
}

/// Which filesystem blocks are revoked, and up to which transaction.
///
/// A block revoked in transaction T must not be replayed from any transaction ≤ T; a later
/// transaction that logs it again wins (journal.rst "Revocation Block"; the kernel's
/// fs/jbd2/revoke.c keeps the highest revoking transaction ID per block). IDs wrap, so they are
/// compared as jbd2 does (`tid_gt`: the signed difference). The table is capped: a journal
/// full of revoke blocks cannot make it grow without bound.
struct JournalRevokeTable {
    private(set) var revokedUpTo: [UInt64: UInt32] = [:]
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { revokedUpTo.count }

    /// Records that `block` is revoked in `transaction`; false when the table is full.
    mutating func revoke(_ block: UInt64, in transaction: UInt32) -> Bool {
        if let known = revokedUpTo[block] {
            if Self.isAfter(transaction, known) { revokedUpTo[block] = transaction }
            return true
        }
        guard revokedUpTo.count < capacity else { return false }
        revokedUpTo[block] = transaction
        return true
    }

    /// Whether the copy of `block` logged in `transaction` must be skipped
    /// (jbd2_journal_test_revoke).
    func isRevoked(_ block: UInt64, in transaction: UInt32) -> Bool {
        guard let known = revokedUpTo[block] else { return false }
        return !Self.isAfter(transaction, known)
    }

    /// `tid_gt(a, b)` (include/linux/jbd2.h): a is later than b, modulo 2³².
    static func isAfter(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }
}
