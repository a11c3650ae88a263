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

/// Journal recovery at open, against e2fsck's own recovery (`e2fsck -E journal_only -y` on a
/// copy) as the oracle, on images a kernel left dirty plus debugfs transactions
/// (JournalFixtures), for ext3/ext4, 1k/4k blocks, with and without metadata_csum and 64bit.
@Suite(.serialized) struct JournalRecoveryTests {
    static let variants = JournalFixtures.variants.map(\.name)

    func dirty(_ name: String) throws -> JournalFixtures.DirtyImage {
        try JournalFixtures.dirty(try #require(JournalFixtures.variants.first { $0.name == name }))
    }

    @Test(arguments: variants)
    func readOnlyReplayEqualsE2fsckAndLeavesTheImageAlone(variant: String) throws {
        let image = try dirty(variant)
        let before = try Data(contentsOf: URL(fileURLWithPath: image.path))
        #expect(JournalFixtures.superblockFlags(before).incompat & 0x4 != 0, "fixture must need recovery")

        let fs = try Ext2Filesystem(device: try RawImage(path: image.path, writable: false))
        defer { try? fs.close() }
        let report = try #require(fs.journalReplay)
        // Two kernel transactions and five from debugfs.
        #expect(report.transactions == 7, "\(report)")
        #expect(report.revokedCopies == 1)
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(fs.device is MemoryOverlayDevice)
        #expect(fs.warnings.first?.contains("replayed 7 transactions in memory (image unchanged)") == true, "\(fs.warnings)")
        #expect(!fs.superblock.needsRecovery)

        // The recovered filesystem, as read through the overlay, equals e2fsck's.
        let ours = try JournalTest.readAll(fs.device)
        let dir = try TempDir("journal-oracle")
        let oracle = try Data(contentsOf: URL(fileURLWithPath: try JournalFixtures.e2fsckReplayed(image.path, in: dir)))
        #expect(JournalTest.firstDifference(ours, oracle, blockSize: image.variant.blockSize) == nil)
        #expect(JournalFixtures.superblockFlags(ours) == JournalFixtures.superblockFlags(oracle))
        #expect(ours != before, "replay must change something")

        // What a reader sees: the debugfs transactions (newest copy, revoke, escape) and the kernel's.
        #expect(try JournalTest.file(fs, "data/target.bin") == image.expectedTarget)
        #expect(try JournalTest.file(fs, "new/f7") == Data("file 7\n".utf8))
        #expect(try JournalTest.file(fs, "new/f1") == Data("file 1\nmore\n".utf8))
        #expect(try JournalTest.file(fs, "new2/file") == Data("second round\n".utf8))
        #expect(try JournalTest.file(fs, "data/new-name") == Data("renamed\n".utf8))
        #expect(try JournalTest.file(fs, "data/gone.txt") == nil)
        #expect(try JournalTest.file(fs, "data/old-name") == nil)

        // Not one byte of the image changed.
        #expect(try Data(contentsOf: URL(fileURLWithPath: image.path)) == before)
    }

    @Test(arguments: variants)
    func writableReplayWritesWhatE2fsckWrites(variant: String) throws {
        let image = try dirty(variant)
        let dir = try TempDir("journal-rw")
        let copy = try JournalFixtures.copy(image.path, in: dir)
        let fs = try Ext2Filesystem(device: try RawImage(path: copy, writable: true), writable: true)
        #expect(fs.journalReplay?.transactions == 7)
        #expect(fs.warnings.first?.contains("into the image") == true, "\(fs.warnings)")
        #expect(!(fs.device is MemoryOverlayDevice))
        #expect(try JournalTest.file(fs, "data/target.bin") == image.expectedTarget)
        try fs.close()

        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(copy))")
        #expect(fsck.status == 0, "\(fsck.text)\(fsck.stderr)")
        let ours = try Data(contentsOf: URL(fileURLWithPath: copy))
        let oracle = try Data(contentsOf: URL(fileURLWithPath: try JournalFixtures.e2fsckReplayed(image.path, in: dir)))
        #expect(JournalTest.firstDifference(ours, oracle, blockSize: image.variant.blockSize) == nil)
        #expect(JournalFixtures.superblockFlags(ours).incompat == JournalFixtures.superblockFlags(oracle).incompat)

        // Opened again, the journal is clean: nothing more to replay.
        let again = try Ext2Filesystem(device: try RawImage(path: copy, writable: false))
        #expect(again.journalReplay == nil && again.warnings.isEmpty)
        try again.close()
    }

    @Test func theOracleItselfIsConsistent() throws {
        // Guards the fixture: e2fsck's replay of it leaves a filesystem e2fsck -fn accepts.
        for variant in JournalFixtures.variants {
            let image = try JournalFixtures.dirty(variant)
            let dir = try TempDir("journal-oracle-check")
            let oracle = try JournalFixtures.e2fsckReplayed(image.path, in: dir)
            let fsck = try Shell.run("e2fsck -fn \(Shell.quote(oracle))")
            #expect(fsck.status == 0, "\(variant.name): \(fsck.text)")
        }
    }

    @Test func aCleanJournalIsNotTouched() throws {
        let dir = try TempDir("journal-clean")
        let path = dir.file("clean.img")
        try Shell.check("truncate -s 16M \(Shell.quote(path)) && mke2fs -F -q -t ext4 \(Shell.quote(path))")
        let fs = try Ext2Filesystem(device: try RawImage(path: path, writable: false))
        #expect(fs.journalReplay == nil && fs.warnings.isEmpty)
        #expect(!(fs.device is MemoryOverlayDevice))
        try fs.close()
    }
}
