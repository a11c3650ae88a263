import GuestFSBlock
import GuestFSFilesystem

/// The jbd2 journal superblock: block 0 of the journal.
///
/// Layout: Linux Documentation/filesystems/ext4/journal.rst, "Super Block" (fields in the
/// spec's order; v1 superblocks end after `s_errno`, v2 adds features, UUID and checksums).
/// Every number here comes from disk and is checked in `init` against the journal's size.
package struct JournalSuperblock: Sendable, Equatable {
    /// The bytes of the structure (`sizeOnDisk` long), kept so an update rewrites only the
    /// fields recovery changes and leaves everything else as it was.
    var raw: [UInt8]

    // Field offsets, journal.rst "Super Block".
    static let offsetBlockSize = 0xC, offsetMaxLen = 0x10, offsetFirst = 0x14
    static let offsetSequence = 0x18, offsetStart = 0x1C, offsetErrno = 0x20
    static let offsetFeatureCompat = 0x24, offsetFeatureIncompat = 0x28, offsetFeatureRoCompat = 0x2C
    static let offsetUUID = 0x30, offsetNrUsers = 0x40
    static let offsetChecksumType = 0x50, offsetNumFastCommitBlocks = 0x54, offsetChecksum = 0xFC
    /// `sizeof(journal_superblock_t)`: what the superblock checksum covers.
    static let sizeOnDisk = 1024

    package let blockType: JournalBlockType
    /// `s_blocksize`: must equal the filesystem's block size.
    package let blockSize: UInt32
    /// `s_maxlen`: blocks in the journal, superblock included.
    package let maxLength: UInt32
    /// `s_first`: the first block of log information.
    package let first: UInt32
    /// `s_sequence`: the first transaction ID expected in the log.
    package let sequence: UInt32
    /// `s_start`: the block where the log starts; 0 means the journal is clean.
    package let start: UInt32
    /// `s_errno`: an error the filesystem recorded in the journal.
    package let errno: Int32
    package let compatFeatures: UInt32
    package let incompatFeatures: UInt32
    package let roCompatFeatures: UInt32
    package let uuid: [UInt8]
    /// `s_num_fc_blks`: blocks reserved for fast commits at the end of the journal.
    package let fastCommitBlocks: UInt32

    // Feature bits, journal.rst "Super Block" (s_feature_compat / s_feature_incompat).
    package static let compatChecksum: UInt32 = 0x1
    package static let incompatRevoke: UInt32 = 0x1
    package static let incompat64Bit: UInt32 = 0x2
    package static let incompatAsyncCommit: UInt32 = 0x4
    package static let incompatCsumV2: UInt32 = 0x8
    package static let incompatCsumV3: UInt32 = 0x10
    package static let incompatFastCommit: UInt32 = 0x20
    static let knownIncompat: UInt32 = 0x3F
    /// `s_checksum_type` for crc32c, the only type a v2/v3 checksum may use (journal.rst).
    static let checksumTypeCRC32C: UInt8 = 4
    /// JBD2_MIN_JOURNAL_BLOCKS (include/linux/jbd2.h): smaller journals are refused.
    static let minimumBlocks: UInt32 = 1024
    /// JBD2_DEFAULT_FAST_COMMIT_BLOCKS (include/linux/jbd2.h): the fast-commit area when
    /// `s_num_fc_blks` is 0.
    static let defaultFastCommitBlocks: UInt32 = 256

    /// Decodes and checks the superblock at the start of `block`.
    ///
    /// - Parameters:
    ///   - fsBlockSize: the filesystem's block size, which the journal's must equal.
    ///   - mappedBlocks: how many blocks the journal inode maps; `s_maxlen` may not exceed it.
    ///   - offset: where the block is on the device, for messages.
    package init(_ block: [UInt8], fsBlockSize: Int, mappedBlocks: UInt64, offset: UInt64? = nil) throws {
        func damaged(_ reason: String) -> ImageError {
            ImageError(offset: offset, structure: "journal superblock", reason: reason, errno: .ioError)
        }
        guard block.count >= Self.sizeOnDisk else { throw damaged("block of \(block.count) bytes is too small") }
        let b = BigEndianBytes(Array(block.prefix(Self.sizeOnDisk)))
        let header = JournalBlockHeader(b)
        guard header.magic == JournalBlockHeader.magic else {
            throw damaged("bad magic 0x\(String(header.magic, radix: 16)) (expected 0x\(String(JournalBlockHeader.magic, radix: 16)))")
        }
        guard header.type == .superblockV1 || header.type == .superblockV2 else {
            throw damaged("block type \(header.rawType) is not a journal superblock")
        }
        raw = b.bytes
        blockType = header.type!
        blockSize = b.u32(Self.offsetBlockSize)
        maxLength = b.u32(Self.offsetMaxLen)
        first = b.u32(Self.offsetFirst)
        sequence = b.u32(Self.offsetSequence)
        start = b.u32(Self.offsetStart)
        errno = Int32(bitPattern: b.u32(Self.offsetErrno))
        // A v1 superblock has no feature fields: they read as zero whatever the bytes say
        // (JBD2_HAS_INCOMPAT_FEATURE checks the version first).
        let v2 = blockType == .superblockV2
        compatFeatures = v2 ? b.u32(Self.offsetFeatureCompat) : 0
        incompatFeatures = v2 ? b.u32(Self.offsetFeatureIncompat) : 0
        roCompatFeatures = v2 ? b.u32(Self.offsetFeatureRoCompat) : 0
        uuid = Array(b.bytes[Self.offsetUUID..<Self.offsetUUID + 16])
        fastCommitBlocks = v2 ? b.u32(Self.offsetNumFastCommitBlocks) : 0

        guard incompatFeatures & ~Self.knownIncompat == 0 else {
            throw damaged("unknown incompatible journal features 0x\(String(incompatFeatures & ~Self.knownIncompat, radix: 16))")
        }
        guard blockSize == fsBlockSize else {
            throw damaged("journal block size \(blockSize) differs from the filesystem's \(fsBlockSize)")
        }
        guard UInt64(maxLength) <= mappedBlocks else {
            throw damaged("journal claims \(maxLength) blocks but its inode maps \(mappedBlocks)")
        }
        guard maxLength >= Self.minimumBlocks else {
            throw damaged("journal of \(maxLength) blocks is shorter than the minimum \(Self.minimumBlocks)")
        }
        guard first >= 1, first < lastLogBlock else {
            throw damaged("first log block \(first) is outside the log (1..<\(lastLogBlock))")
        }
        guard start == 0 || (start >= first && start < lastLogBlock) else {
            throw damaged("log start \(start) is outside the log (\(first)..<\(lastLogBlock))")
        }
        if hasChecksumV2orV3 {
            guard b.u8(Self.offsetChecksumType) == Self.checksumTypeCRC32C else {
                throw damaged("checksum type \(b.u8(Self.offsetChecksumType)) is not crc32c")
            }
            let stored = b.u32(Self.offsetChecksum)
            let computed = JournalChecksum.crc32c(~0, b.bytes, zeroingFieldAt: Self.offsetChecksum)
            guard stored == computed else {
                throw damaged("checksum 0x\(String(stored, radix: 16)) does not match the contents (0x\(String(computed, radix: 16)))")
            }
        }
    }

    package var hasChecksumV2orV3: Bool { incompatFeatures & (Self.incompatCsumV2 | Self.incompatCsumV3) != 0 }
    package var hasChecksumV3: Bool { incompatFeatures & Self.incompatCsumV3 != 0 }
    package var has64BitBlocks: Bool { incompatFeatures & Self.incompat64Bit != 0 }
    package var hasFastCommit: Bool { incompatFeatures & Self.incompatFastCommit != 0 }
    /// The log is clean: nothing to replay.
    package var isClean: Bool { start == 0 }

    /// One past the last block of the circular log (`j_last`): the end of the journal, less
    /// the fast-commit area when there is one (jbd2_journal_initialize_fast_commit).
    package var lastLogBlock: UInt32 {
        guard hasFastCommit else { return maxLength }
        let reserved = fastCommitBlocks == 0 ? Self.defaultFastCommitBlocks : fastCommitBlocks
        return maxLength > reserved ? maxLength - reserved : 0
    }

    /// The seed of every block checksum: crc32c of the journal UUID (`j_csum_seed`).
    var checksumSeed: UInt32 { JournalChecksum.crc32c(~0, uuid) }

    /// The superblock a finished recovery leaves: `s_start` 0 (the log is empty), `s_sequence`
    /// the next transaction ID, `s_errno` cleared once it has been passed on to the filesystem
    /// superblock, and the checksum recomputed (e2fsck's e2fsck_journal_release with reset).
    func recovered(nextSequence: UInt32, clearErrno: Bool) -> [UInt8] {
        var b = BigEndianBytes(raw)
        b.setU32(nextSequence, at: Self.offsetSequence)
        b.setU32(0, at: Self.offsetStart)
        if clearErrno { b.setU32(0, at: Self.offsetErrno) }
        if hasChecksumV2orV3 {
            b.setU32(JournalChecksum.crc32c(~0, b.bytes, zeroingFieldAt: Self.offsetChecksum), at: Self.offsetChecksum)
        }
        return b.bytes
    }
}
