import GuestFSBlock
import GuestFSFilesystem

/// One tag of a descriptor block: where the next data block of the log goes in the filesystem.
struct JournalBlockTag: Equatable {
    /// The filesystem block the data belongs at (`t_blocknr`, plus `t_blocknr_high` << 32 when
    /// the journal has 64-bit block numbers).
    let fsBlock: UInt64
    let flags: UInt32
    /// `t_checksum`: 32 bits with csum v3, the low 16 bits of the same value with csum v2.
    let checksum: UInt32

    // Tag flags, journal.rst "Descriptor Block" (jbd2_tag_flags).
    /// The data block's first four bytes matched the magic and were zeroed in the log.
    static let flagEscape: UInt32 = 0x1
    /// No 16-byte UUID follows this tag.
    static let flagSameUUID: UInt32 = 0x2
    static let flagDeleted: UInt32 = 0x4
    /// The last tag of the descriptor block.
    static let flagLastTag: UInt32 = 0x8

    var isEscaped: Bool { flags & Self.flagEscape != 0 }
}

/// How a journal lays out descriptor block tags; decided once from the journal superblock.
///
/// Layout: journal.rst, "Descriptor Block". With csum v3 a tag is `struct journal_block_tag3_s`
/// (16 bytes: `t_blocknr`, `t_flags` as a 32-bit word, `t_blocknr_high`, `t_checksum`) whether
/// or not block numbers are 64-bit. Otherwise it is `struct journal_block_tag_s`: `t_blocknr`,
/// a 16-bit `t_checksum`, 16-bit `t_flags`, and `t_blocknr_high` only with 64-bit block numbers
/// (8 or 12 bytes). journal.rst stops there, but the size jbd2 really uses is the kernel's
/// `journal_tag_bytes()`, which adds another 2 bytes when csum v2 is on (10 or 14 bytes); we
/// follow the code, since that is what writes the journals we read. A tag without
/// JBD2_FLAG_SAME_UUID is followed by a 16-byte UUID. With csum v2/v3 the block ends with a
/// 4-byte checksum tail that tags never overlap.
struct JournalTagFormat: Equatable {
    let tagBytes: Int
    let is64Bit: Bool
    let checksumV2: Bool
    let checksumV3: Bool
    /// Bytes at the end of descriptor and revoke blocks reserved for the checksum tail.
    let tailBytes: Int

    static let uuidBytes = 16

    init(_ superblock: JournalSuperblock) {
        self.init(is64Bit: superblock.has64BitBlocks, checksumV2: superblock.incompatFeatures & JournalSuperblock.incompatCsumV2 != 0,
                  checksumV3: superblock.hasChecksumV3)
    }

    init(is64Bit: Bool, checksumV2: Bool, checksumV3: Bool) {
        self.is64Bit = is64Bit
        self.checksumV2 = checksumV2 && !checksumV3
        self.checksumV3 = checksumV3
        if checksumV3 {
            tagBytes = 16
        } else {
            tagBytes = 8 + (checksumV2 ? 2 : 0) + (is64Bit ? 4 : 0)
        }
        tailBytes = checksumV2 || checksumV3 ? JournalBlockTail.size : 0
    }

    /// The tags of a descriptor block, in log order (count_tags / the replay loop of the
    /// kernel's fs/jbd2/recovery.c). At most one tag per `tagBytes` fits, so the count is
    /// bounded by the block size whatever the flags say.
    func tags(of block: [UInt8]) -> [JournalBlockTag] {
        let b = BigEndianBytes(block)
        let end = block.count - tailBytes
        var tags: [JournalBlockTag] = []
        var offset = JournalBlockHeader.size
        while offset + tagBytes <= end {
            let tag: JournalBlockTag
            let low = UInt64(b.u32(offset))
            if checksumV3 {
                let high = is64Bit ? UInt64(b.u32(offset + 8)) << 32 : 0
                tag = JournalBlockTag(fsBlock: low | high, flags: b.u32(offset + 4), checksum: b.u32(offset + 12))
            } else {
                let high = is64Bit ? UInt64(b.u32(offset + 8)) << 32 : 0
                tag = JournalBlockTag(fsBlock: low | high, flags: UInt32(b.u16(offset + 6)), checksum: UInt32(b.u16(offset + 4)))
            }
            tags.append(tag)
            offset += tagBytes
            if tag.flags & JournalBlockTag.flagSameUUID == 0 { offset += Self.uuidBytes }
            if tag.flags & JournalBlockTag.flagLastTag != 0 { break }
        }
        return tags
    }

    /// Whether a data block matches its tag's checksum (jbd2_block_tag_csum_verify): crc32c of
    /// the UUID seed, the big-endian transaction ID of the descriptor and the block as stored in
    /// the log (still escaped). Without csum v2/v3 there is nothing to check.
    func checksumMatches(_ tag: JournalBlockTag, data: [UInt8], sequence: UInt32, seed: UInt32) -> Bool {
        guard checksumV2 || checksumV3 else { return true }
        let sequenceBytes: [UInt8] = [UInt8(sequence >> 24), UInt8(truncatingIfNeeded: sequence >> 16),
                                      UInt8(truncatingIfNeeded: sequence >> 8), UInt8(truncatingIfNeeded: sequence)]
        let computed = JournalChecksum.crc32c(JournalChecksum.crc32c(seed, sequenceBytes), data)
        return checksumV3 ? tag.checksum == computed : tag.checksum == computed & 0xFFFF
    }
}
