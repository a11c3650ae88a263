import GuestFSBlock
import GuestFSFilesystem

/// The kinds of jbd2 metadata block, journal.rst "Block Header" (`h_blocktype`).
package enum JournalBlockType: UInt32, Sendable {
    case descriptor = 1
    case commit = 2
    case superblockV1 = 3
    case superblockV2 = 4
    case revoke = 5
}

/// The 12-byte header every jbd2 metadata block starts with.
///
/// Layout: journal.rst, "Block Header": `h_magic`, `h_blocktype`, `h_sequence`, big-endian.
/// A block whose first word is not the magic is data (or the end of the log).
struct JournalBlockHeader {
    /// JBD2_MAGIC_NUMBER (journal.rst "Block Header"; "the first 4 bytes of /dev/random").
    static let magic: UInt32 = 0xC03B_3998
    static let size = 12

    let magic: UInt32
    let rawType: UInt32
    let sequence: UInt32

    init(_ block: BigEndianBytes) {
        magic = block.u32(0)
        rawType = block.u32(4)
        sequence = block.u32(8)
    }

    var type: JournalBlockType? { JournalBlockType(rawValue: rawType) }
    var isJournalBlock: Bool { magic == Self.magic }
}

/// A commit block: the transaction before it is complete.
///
/// Layout: journal.rst, "Commit Block" (`struct commit_header`): the header, `h_chksum_type`
/// (0xC), `h_chksum_size` (0xD), `h_chksum[8]` (0x10; with csum v2/v3 the first word is the
/// crc32c of the UUID and the whole block with that word zeroed), `h_commit_sec` (0x30),
/// `h_commit_nsec` (0x38).
struct JournalCommitBlock {
    static let offsetChecksum = 0x10
    static let offsetCommitSeconds = 0x30

    let commitSeconds: UInt64

    init(_ block: BigEndianBytes) {
        commitSeconds = block.u64(Self.offsetCommitSeconds)
    }

    /// Whether the block's csum v2/v3 checksum matches (jbd2_commit_block_csum_verify).
    static func checksumMatches(_ block: [UInt8], seed: UInt32) -> Bool {
        let stored = BigEndianBytes(block).u32(offsetChecksum)
        return stored == JournalChecksum.crc32c(seed, block, zeroingFieldAt: offsetChecksum)
    }
}

/// The checksum tail of descriptor and revoke blocks with csum v2/v3.
///
/// Layout: journal.rst, "Descriptor Block" (`struct jbd2_journal_block_tail`) and "Revocation
/// Block" (`struct jbd2_journal_revoke_tail`): one big-endian word at the very end of the
/// block, the crc32c of the UUID and the whole block with that word zeroed.
enum JournalBlockTail {
    static let size = 4

    static func checksumMatches(_ block: [UInt8], seed: UInt32) -> Bool {
        let offset = block.count - size
        return BigEndianBytes(block).u32(offset) == JournalChecksum.crc32c(seed, block, zeroingFieldAt: offset)
    }
}
