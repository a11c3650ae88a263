import Foundation
import Testing
import TestSupport

/// `--progress`: bytes, files and rate on stderr for copy-in, copy-out, tar-in and tar-out,
/// ending with one "done" line; nothing by default when stderr is not a terminal (as here).
@Suite(.serialized) struct ProgressTests {
    static let fixture = Result { () throws -> (TempDir, String, String) in
        let scratch = try TempDir("tar-progress")
        let built = try TarFixtures.ext4Image(scratch)
        return (scratch, built.image, built.tree)
    }

    /// The last line: "imagemount: progress: done: 11M, 23 files in 0.1 s (80M/s)".
    static func doneLine(_ stderr: String) -> String? {
        stderr.split(separator: "\n").last.map(String.init).flatMap { $0.hasPrefix("imagemount: progress: done: ") ? $0 : nil }
    }

    @Test func everyCopyingCommandReportsWhenAsked() throws {
        let (scratch, image, tree) = try Self.fixture.get()
        let out = try TempDir("tar-progress-out")
        let runs: [[String]] = [
            ["copy-out", "-a", image, "--progress", "/data", out.path],
            ["tar-out", "-a", image, "--progress", "/", out.file("p.tar")],
        ]
        for arguments in runs {
            let r = try ImageMountBinary.run(arguments)
            #expect(r.status == 0, "\(arguments): \(r.stderr)")
            let done = try #require(Self.doneLine(r.stderr), "\(arguments[0]): \(r.stderr)")
            #expect(done.contains(" files in ") && done.hasSuffix("/s)"), "\(done)")
            #expect(!r.stderr.contains("\r"), "not a terminal: lines, not redraws")
        }
        // tar-out's byte count is the files' logical size: 8 MiB of sparse file and more.
        let tarDone = try #require(Self.doneLine(try ImageMountBinary.run(["tar-out", "-a", image, "--progress", "/data", out.file("q.tar")]).stderr))
        #expect(tarDone.contains("M, ") && tarDone.contains(" files in "), "\(tarDone)")
        let target = scratch.file("in.img")
        try Shell.check("truncate -s 96M \(Shell.quote(target)) && mke2fs -F -q -t ext4 \(Shell.quote(target))")
        for arguments in [["copy-in", "-a", target, "--progress", tree + "/data", "/"],
                          ["tar-in", "-a", target, "--progress", out.file("p.tar"), "/"]] {
            let r = try ImageMountBinary.run(arguments)
            #expect(r.status == 0, "\(arguments): \(r.stderr)")
            #expect(Self.doneLine(r.stderr) != nil, "\(arguments[0]): \(r.stderr)")
        }
    }

    @Test func silentByDefaultWithoutATerminal() throws {
        let (_, image, _) = try Self.fixture.get()
        let out = try TempDir("tar-progress-quiet")
        for arguments in [["copy-out", "-a", image, "/etc", out.path], ["tar-out", "-a", image, "/etc", out.file("e.tar")],
                          ["tar-out", "-a", image, "--progress", "--no-progress", "/etc", out.file("f.tar")]] {
            let r = try ImageMountBinary.run(arguments)
            #expect(r.status == 0 && r.stderr.isEmpty, "\(arguments): \(r.stderr)")
        }
    }

    /// On a terminal (script(1) gives one), the line is redrawn in place without being asked.
    @Test func onATerminalByDefault() throws {
        let (_, image, _) = try Self.fixture.get()
        let out = try TempDir("tar-progress-tty")
        let binary = try ImageMountBinary.path()
        let command = [binary, "tar-out", "-a", image, "/data", out.file("t.tar")].map(Shell.quote).joined(separator: " ")
        let r = try Shell.run("script -qec \(Shell.quote(command)) /dev/null")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.text.contains("\rimagemount: progress: done: "), "\(r.text.debugDescription)")
    }
}
