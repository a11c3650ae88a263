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

/// Dirty journals through mounts: read-only shows the recovered state with the image's bytes
/// unchanged; `--rw` replays into the image, writes on top, and unmounts e2fsck-clean.
@Suite(.serialized) struct JournalReplayMountTests {
    @Test(arguments: JournalReplayCommandTests.variants)
    func readOnlyMountShowsTheRecoveredStateAndLeavesTheImageAlone(variant: String) throws {
        let image = try JournalFixtures.dirty(try #require(JournalFixtures.variants.first { $0.name == variant }))
        let before = try Shell.check("sha256sum \(Shell.quote(image.path))")
        let m = try FuseMount(images: [image.path], arguments: ["--ro"])
        do {
            defer { m.close() }
            #expect(try Data(contentsOf: URL(fileURLWithPath: m.path + "/data/target.bin")) == image.expectedTarget)
            #expect(try Shell.check("cat \(Shell.quote(m.path))/new2/file \(Shell.quote(m.path))/data/changed.txt") ==
                    "second round\nafter the crash\n")
            #expect(!FileManager.default.fileExists(atPath: m.path + "/data/gone.txt"))
        }
        #expect(try Shell.check("sha256sum \(Shell.quote(image.path))") == before)
    }

    @Test(arguments: JournalReplayCommandTests.variants)
    func rwMountReplaysIntoTheImageAndUnmountsClean(variant: String) throws {
        let dirty = try JournalFixtures.dirty(try #require(JournalFixtures.variants.first { $0.name == variant }))
        let dir = try TempDir("imagemount-journal-rw")
        let image = try JournalFixtures.copy(dirty.path, in: dir)
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        do {
            defer { m.close() }
            #expect(try Data(contentsOf: URL(fileURLWithPath: m.path + "/data/target.bin")) == dirty.expectedTarget)
            try Shell.check("cd \(Shell.quote(m.path)) && echo written > after-replay && mv data/new-name data/renamed-again && rm -r new")
        }
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        // needs_recovery is gone and the state is clean.
        let flags = JournalFixtures.superblockFlags(try Data(contentsOf: URL(fileURLWithPath: image)))
        #expect(flags.incompat & 0x4 == 0 && flags.state & 1 == 1)
        let k = try KernelMount(image: image)
        defer { k.close() }
        #expect(try Data(contentsOf: URL(fileURLWithPath: k.path + "/data/target.bin")) == dirty.expectedTarget)
        #expect(try Shell.check("cat \(Shell.quote(k.path))/after-replay \(Shell.quote(k.path))/data/renamed-again") == "written\nrenamed\n")
        #expect(!FileManager.default.fileExists(atPath: k.path + "/new"))
    }
}
