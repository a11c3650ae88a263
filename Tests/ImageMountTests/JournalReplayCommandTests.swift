import Foundation
import Testing
import TestSupport

/// A crashed guest's disk (journal needing recovery) through the command line: commands show
/// the recovered files, warn that the journal was replayed in memory, and leave the image alone.
@Suite struct JournalReplayCommandTests {
    static let variants = JournalFixtures.variants.map(\.name)

    @Test(arguments: variants)
    func catShowsTheRecoveredStateAndTheImageIsUnchanged(variant: String) throws {
        let image = try JournalFixtures.dirty(try #require(JournalFixtures.variants.first { $0.name == variant }))
        let before = try Shell.check("sha256sum \(Shell.quote(image.path))")

        let target = try ImageMountBinary.run(["cat", "-a", image.path, "/data/target.bin"])
        #expect(target.status == 0, "\(target.stderr)")
        #expect(target.stdout == image.expectedTarget)
        #expect(target.stderr.contains("needs journal recovery; replayed 7 transactions in memory (image unchanged)"), "\(target.stderr)")

        let files = try ImageMountBinary.run(["cat", "-a", image.path, "/new/f1", "/new2/file", "/data/changed.txt"])
        #expect(files.status == 0, "\(files.stderr)")
        #expect(files.text == "file 1\nmore\nsecond round\nafter the crash\n")

        let gone = try ImageMountBinary.run(["cat", "-a", image.path, "/data/gone.txt"])
        #expect(gone.status != 0)

        #expect(try Shell.check("sha256sum \(Shell.quote(image.path))") == before)
    }

    @Test func lsListsWhatTheJournalCreated() throws {
        let image = try JournalFixtures.dirty(JournalFixtures.variants[2])
        let result = try ImageMountBinary.run(["ls", "-a", image.path, "/new"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text.split(separator: "\n").count == 40)
    }
}
