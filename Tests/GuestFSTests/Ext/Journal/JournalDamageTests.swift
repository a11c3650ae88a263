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
import TestSupport

/// Damaged journals: each test copies a dirty fixture and breaks one thing, visibly, here.
/// Recovery must stop at the last valid transaction as e2fsck does, or refuse clearly; never
/// crash or hang, and never write to an image opened read-only.
@Suite(.serialized) struct JournalDamageTests {
    func fixture(_ name: String) throws -> JournalFixtures.DirtyImage {
        try JournalFixtures.dirty(try #require(JournalFixtures.variants.first { $0.name == name }))
    }

    @Test func badJournalSuperblockMagicOpensReadOnlyWithoutReplayAndRefusesWritable() throws {
        let image = try fixture("ext4-4k")
        let dir = try TempDir("journal-damage")
        let copy = try JournalFixtures.copy(image.path, in: dir)
        try JournalTest.patch(copy, at: try JournalTest.journalBlockOffset(copy, 0, blockSize: 4096), [0xDE, 0xAD, 0xBE, 0xEF])
        let before = try Data(contentsOf: URL(fileURLWithPath: copy))

        let fs = try Ext2Filesystem(device: try RawImage(path: copy, writable: false))
        #expect(fs.journalReplay == nil)
        #expect(fs.warnings.contains { $0.contains("journal superblock is damaged") && $0.contains("bad magic") }, "\(fs.warnings)")
        #expect(try JournalTest.file(fs, "data/target.bin") == image.originalTarget)
        try fs.close()

        #expect(throws: ImageError.self) {
            _ = try Ext2Filesystem(device: try RawImage(path: copy, writable: true), writable: true)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == before)
    }

    @Test func badCommitChecksumEndsTheLogBeforeThatTransactionAsE2fsckDoes() throws {
        let image = try fixture("ext4-4k")
        let dir = try TempDir("journal-damage")
        let copy = try JournalFixtures.copy(image.path, in: dir)
        // Commits: kernel T1, T2, then debugfs T3 (block 0), T4 (blocks 1, 2), ... Break T4's.
        let commits = try JournalTest.commitBlocks(copy)
        try #require(commits.count == 7)
        let at = try JournalTest.journalBlockOffset(copy, commits[3], blockSize: 4096)
        let old = try JournalTest.readFile(copy, at: at + 0x38, count: 1)
        try JournalTest.patch(copy, at: at + 0x38, [old[0] ^ 0xFF])

        let fs = try Ext2Filesystem(device: try RawImage(path: copy, writable: false))
        defer { try? fs.close() }
        let report = try #require(fs.journalReplay)
        #expect(report.transactions == 3)
        #expect(report.markedWithErrors)
        #expect(report.problems.contains { $0.contains("commit block") && $0.contains("checksum") }, "\(report.problems)")
        let b = 4096
        var expected = JournalFixtures.debugfsBlock("T1 block0", fill: 0x61, blockSize: b)
        expected += image.originalTarget[b...]
        #expect(try JournalTest.file(fs, "data/target.bin") == expected)

        let ours = try JournalTest.readAll(fs.device)
        let oracle = try Data(contentsOf: URL(fileURLWithPath: try JournalFixtures.e2fsckReplayed(copy, in: dir)))
        #expect(JournalTest.firstDifference(ours, oracle, blockSize: b) == nil)
        #expect(JournalFixtures.superblockFlags(ours) == JournalFixtures.superblockFlags(oracle))
    }

    @Test func aTagPastTheEndOfTheFilesystemIsSkippedAndTheRestReplayed() throws {
        let image = try fixture("ext3-4k")
        let dir = try TempDir("journal-damage")
        let copy = try JournalFixtures.copy(image.path, in: dir)
        // The descriptor of debugfs's first transaction (T3) follows the kernel's second commit;
        // its first tag's t_blocknr is at offset 12. No checksums in this journal.
        let commits = try JournalTest.commitBlocks(copy)
        let descriptor = try JournalTest.journalBlockOffset(copy, commits[1] + 1, blockSize: 4096)
        try #require(try JournalTest.readFile(copy, at: descriptor, count: 4) == [0xC0, 0x3B, 0x39, 0x98])
        try JournalTest.patch(copy, at: descriptor + 12, [0x7F, 0xFF, 0xFF, 0xF0])

        let fs = try Ext2Filesystem(device: try RawImage(path: copy, writable: false))
        defer { try? fs.close() }
        let report = try #require(fs.journalReplay)
        #expect(report.transactions == 7)
        #expect(report.markedNotClean)
        #expect(report.problems.contains { $0.contains("past the end of the filesystem") }, "\(report.problems)")
        // T3 (block 0 again) still lands, and so does everything after.
        #expect(try JournalTest.file(fs, "data/target.bin") == image.expectedTarget)

        // Read-write: the same, and a full check is forced as e2fsck forces it after a failed replay.
        let rw = try Ext2Filesystem(device: try RawImage(path: copy, writable: true), writable: true)
        #expect(rw.journalReplay?.markedNotClean == true)
        #expect(rw.superblock.state & 0x1 == 0)
        try rw.close()
    }

    @Test func aLogThatNeverEndsStopsAfterOneLapOfTheJournal() throws {
        let image = try fixture("ext3-4k")
        let dir = try TempDir("journal-damage")
        let copy = try JournalFixtures.copy(image.path, in: dir)
        // Every block of the log becomes a commit block of the next transaction ID, so the log
        // is valid all the way round; s_start = s_first and s_sequence = 1000.
        let jsbOffset = try JournalTest.journalBlockOffset(copy, 0, blockSize: 4096)
        let jsb = try JournalTest.readFile(copy, at: jsbOffset, count: 1024)
        let be = { (o: Int) in UInt32(jsb[o]) << 24 | UInt32(jsb[o + 1]) << 16 | UInt32(jsb[o + 2]) << 8 | UInt32(jsb[o + 3]) }
        let maxLen = be(0x10), first = be(0x14)
        func word(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
        // The journal's blocks in order: one debugfs run of `bmap <8> N` for every N.
        let script = dir.file("bmap")
        try Data((0..<maxLen).map { "bmap <8> \($0)\n" }.joined().utf8).write(to: URL(fileURLWithPath: script))
        let blocks = try Shell.check("debugfs -f \(Shell.quote(script)) \(Shell.quote(copy)) 2>/dev/null")
            .split(separator: "\n").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        try #require(blocks.count == Int(maxLen))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: copy))
        for index in first..<maxLen {
            let block = word(0xC03B_3998) + word(2) + word(1000 + (index - first))
            try handle.seek(toOffset: blocks[Int(index)] * 4096)
            handle.write(Data(block + [UInt8](repeating: 0, count: 4096 - block.count)))
        }
        try handle.close()
        try JournalTest.patch(copy, at: jsbOffset + 0x18, word(1000) + word(first))

        let started = Date()
        let fs = try Ext2Filesystem(device: try RawImage(path: copy, writable: false))
        defer { try? fs.close() }
        #expect(Date().timeIntervalSince(started) < 30)
        let report = try #require(fs.journalReplay)
        #expect(report.transactions == maxLen - first)
        #expect(report.blocksWritten == 0)
        #expect(report.nextSequence == 1000 + (maxLen - first) + 1)
        #expect(report.problems.contains { $0.contains("runs on for more blocks than the journal holds") }, "\(report.problems)")
        // e2fsck ends the same log where the IDs stop matching, one lap later: the same state.
        let ours = try JournalTest.readAll(fs.device)
        let oracle = try Data(contentsOf: URL(fileURLWithPath: try JournalFixtures.e2fsckReplayed(copy, in: dir)))
        #expect(JournalTest.firstDifference(ours, oracle, blockSize: 4096) == nil)
    }

    @Test func anExternalJournalIsRefusedForWritingAndOpenedReadOnlyWithAWarning() throws {
        let image = try fixture("ext3-4k")
        let dir = try TempDir("journal-damage")
        let copy = try JournalFixtures.copy(image.path, in: dir)
        // s_journal_inum = 0 and a journal UUID: what mke2fs -J device= leaves (super.rst 0xD0, 0xE0).
        try JournalTest.patch(copy, at: 1024 + 0xD0, [UInt8](repeating: 0x5A, count: 16))
        try JournalTest.patch(copy, at: 1024 + 0xE0, [0, 0, 0, 0])
        let fs = try Ext2Filesystem(device: try RawImage(path: copy, writable: false))
        #expect(fs.journalReplay == nil)
        #expect(fs.warnings.contains { $0.contains("external journal not supported") }, "\(fs.warnings)")
        try fs.close()
        let error = #expect(throws: ImageError.self) {
            _ = try Ext2Filesystem(device: try RawImage(path: copy, writable: true), writable: true)
        }
        #expect(error?.reason.contains("external journal not supported") == true)
    }
}
