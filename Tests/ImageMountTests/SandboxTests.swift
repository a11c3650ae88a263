import Foundation
import Testing
import TestSupport

/// The sandbox (Sources/ImageMount/CLI/Sandbox.swift): once a reading command has opened its
/// images, it cannot open a host path it was not given, nor run a program; copy-out can still
/// create its files beneath the destination; the mount server runs under the seccomp filter.
@Suite(.serialized)
struct SandboxTests {
    static let probe = ["IMAGEMOUNT_SANDBOX_PROBE": "/etc/shadow"]

    @Test func catCannotOpenHostPathsOrRunPrograms() throws {
        let f = try MountFixture.get()
        let r = try ImageMountBinary.run(["cat", "-a", f.rootImage, "/a.txt"], environment: Self.probe)
        let expected = try String(contentsOfFile: f.rootSource + "/a.txt", encoding: .utf8)
        #expect(r.status == 0 && r.text == expected, "\(r.stderr)")
        #expect(r.stderr.contains("open /etc/shadow: denied (Permission denied)"), "\(r.stderr)")
        #expect(r.stderr.contains("exec /bin/true: denied (Operation not permitted)"), "\(r.stderr)")
        // The same probe with the sandbox switched off opens the file: the check above is real.
        var off = Self.probe
        off["IMAGEMOUNT_SANDBOX"] = "off"
        let unsandboxed = try ImageMountBinary.run(["cat", "-a", f.rootImage, "/a.txt"], environment: off)
        #expect(!unsandboxed.stderr.contains("sandbox probe"), "\(unsandboxed.stderr)")
    }

    @Test func copyOutWritesOnlyBeneathItsDestination() throws {
        let f = try MountFixture.get()
        let dir = try TempDir("imagemount-sandbox")
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let r = try ImageMountBinary.run(["copy-out", "-a", f.rootImage, "/dir", out], environment: Self.probe)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("open /etc/shadow: denied (Permission denied)"), "\(r.stderr)")
        let diff = try Shell.run("diff -r --no-dereference \(Shell.quote(f.rootSource + "/dir")) \(Shell.quote(out + "/dir"))")
        #expect(diff.status == 0, "\(diff.text)")
    }

    @Test func mountServerRunsUnderTheFilter() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let pid = try #require(m.serverPID)
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("NoNewPrivs:\t1"), "\(status)")
        #expect(status.contains("Seccomp:\t2"), "\(status)")
        let expected = try String(contentsOfFile: f.rootSource + "/a.txt", encoding: .utf8)
        #expect(try Shell.check("cat \(Shell.quote(m.path))/a.txt") == expected)
    }
}
