import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing

/// The jbd2 decoders on blocks built here, field by field (journal.rst).
@Suite struct JournalFormatTests {
    func word(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }

    @Test func crc32cIsTheRawCastagnoliState() {
        // The standard check value of CRC-32C over "123456789" is 0xE3069283 after the final
        // inversion; jbd2 stores the state without it.
        #expect(JournalChecksum.crc32c(~0, Array("123456789".utf8)) == ~UInt32(0xE306_9283))
    }

    @Test func tagSizesFollowTheKernelsJournalTagBytes() {
        #expect(JournalTagFormat(is64Bit: false, checksumV2: false, checksumV3: false).tagBytes == 8)
        #expect(JournalTagFormat(is64Bit: true, checksumV2: false, checksumV3: false).tagBytes == 12)
        #expect(JournalTagFormat(is64Bit: false, checksumV2: true, checksumV3: false).tagBytes == 10)
        #expect(JournalTagFormat(is64Bit: true, checksumV2: true, checksumV3: false).tagBytes == 14)
        #expect(JournalTagFormat(is64Bit: false, checksumV2: false, checksumV3: true).tagBytes == 16)
        #expect(JournalTagFormat(is64Bit: true, checksumV2: false, checksumV3: true).tagBytes == 16)
        #expect(JournalTagFormat(is64Bit: true, checksumV2: false, checksumV3: true).tailBytes == 4)
    }

    @Test func descriptorTagsDecodeUUIDsFlagsAndHighBits() {
        // 64-bit, no checksums: tag = blocknr, checksum16, flags16, blocknr_high (12 bytes).
        var block = word(0xC03B_3998) + word(1) + word(7)
        block += word(100) + [0, 0, 0, 0] + word(0)                 // no SAME_UUID: a UUID follows
        block += [UInt8](repeating: 0x11, count: 16)
        block += word(200) + [0, 0, 0, 0x3] + word(1)               // escape | same UUID, high word 1
        block += word(300) + [0, 0, 0, 0xA] + word(0)               // same UUID | last
        block += word(400) + [0, 0, 0, 0x2] + word(0)               // after the last tag: ignored
        block += [UInt8](repeating: 0, count: 1024 - block.count)
        let tags = JournalTagFormat(is64Bit: true, checksumV2: false, checksumV3: false).tags(of: block)
        #expect(tags.map(\.fsBlock) == [100, (1 << 32) | 200, 300])
        #expect(tags.map(\.isEscaped) == [false, true, false])
    }

    @Test func tagsNeverRunIntoTheChecksumTailOrPastTheBlock() {
        // No LAST_TAG anywhere: the walk stops at the tail.
        var block = word(0xC03B_3998) + word(1) + word(7)
        while block.count < 1024 { block += word(5) + word(0x2) + word(0) + word(0) }
        block = Array(block.prefix(1024))
        let format = JournalTagFormat(is64Bit: true, checksumV2: false, checksumV3: true)
        #expect(format.tags(of: block).count == (1024 - 12 - 4) / 16)
    }

    @Test func revokeRecordsStopAtRCountAndABadCountIsRefused() {
        var block = word(0xC03B_3998) + word(5) + word(9) + word(16 + 3 * 4)
        block += word(10) + word(20) + word(30) + word(40)
        block += [UInt8](repeating: 0, count: 1024 - block.count)
        let plain = JournalTagFormat(is64Bit: false, checksumV2: false, checksumV3: false)
        #expect(JournalRevokeBlock.records(of: block, format: plain) == [10, 20, 30])
        block.replaceSubrange(12..<16, with: word(1024))
        #expect(JournalRevokeBlock.records(of: block, format: JournalTagFormat(is64Bit: false, checksumV2: false, checksumV3: true)) == nil)
    }

    @Test func revokesCoverTheirOwnAndEarlierTransactionsAcrossIDWrap() {
        var table = JournalRevokeTable(capacity: 2)
        let first = table.revoke(7, in: UInt32.max)
        #expect(first)
        #expect(table.isRevoked(7, in: UInt32.max - 1))
        #expect(table.isRevoked(7, in: UInt32.max))
        #expect(!table.isRevoked(7, in: 0))             // 0 comes after 0xFFFFFFFF
        let later = table.revoke(7, in: 1)
        #expect(later && table.isRevoked(7, in: 0))
        let second = table.revoke(8, in: 1)
        let third = table.revoke(9, in: 1)               // full
        #expect(second && !third)
    }

    @Test func journalSuperblockChecksAreEnforced() throws {
        func superblock(maxLen: UInt32 = 2048, first: UInt32 = 1, start: UInt32 = 0, blockSize: UInt32 = 1024) -> [UInt8] {
            var b = word(0xC03B_3998) + word(4) + word(0) + word(blockSize) + word(maxLen) + word(first) + word(1) + word(start)
            b += [UInt8](repeating: 0, count: 1024 - b.count)
            return b
        }
        #expect(try JournalSuperblock(superblock(), fsBlockSize: 1024, mappedBlocks: 2048).isClean)
        #expect(throws: ImageError.self) { try JournalSuperblock(superblock(blockSize: 4096), fsBlockSize: 1024, mappedBlocks: 2048) }
        #expect(throws: ImageError.self) { try JournalSuperblock(superblock(maxLen: 4096), fsBlockSize: 1024, mappedBlocks: 2048) }
        #expect(throws: ImageError.self) { try JournalSuperblock(superblock(start: 5000), fsBlockSize: 1024, mappedBlocks: 2048) }
        #expect(throws: ImageError.self) { try JournalSuperblock(superblock(first: 0), fsBlockSize: 1024, mappedBlocks: 2048) }
        var csum = superblock()
        csum.replaceSubrange(0x28..<0x2C, with: word(0x10))  // csum v3 without a valid checksum
        csum[0x50] = 4
        #expect(throws: ImageError.self) { try JournalSuperblock(csum, fsBlockSize: 1024, mappedBlocks: 2048) }
        let good = JournalChecksum.crc32c(~0, csum, zeroingFieldAt: 0xFC)
        csum.replaceSubrange(0xFC..<0x100, with: word(good))
        let sb = try JournalSuperblock(csum, fsBlockSize: 1024, mappedBlocks: 2048)
        #expect(sb.hasChecksumV3)
        // The recovered form keeps a valid checksum.
        _ = try JournalSuperblock(sb.recovered(nextSequence: 9, clearErrno: true), fsBlockSize: 1024, mappedBlocks: 2048)
    }
}
