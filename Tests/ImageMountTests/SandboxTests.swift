import Foundation
import Testing
import TestSupport

/// The sandbox (Sources/ImageMount/CLI/Sandbox.swift): once a reading command has opened its
/// images, it cannot open a host path it was not given, nor run a program; copy-out can still
/// create its files beneath the destination; the mount server runs under the seccomp filter.
@Suite(.serialized)
struct SandboxTests {
    /// /proc/1/environ too: /proc is closed like every other host path (nothing sandboxed runs
    /// on libdispatch, whose worker monitor would need it).
    static let probe = ["IMAGEMOUNT_SANDBOX_PROBE": "/etc/shadow:/proc/1/environ"]

    /// The probe's two refusals, and that the probe ran at all.
    static func expectConfined(_ r: Shell.Output, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.stderr.contains("open /etc/shadow: denied (Permission denied)"), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains("open /proc/1/environ: denied (Permission denied)"), "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.contains("exec /bin/true: denied (Operation not permitted)"), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func catCannotOpenHostPathsOrRunPrograms() throws {
        let f = try MountFixture.get()
        let r = try ImageMountBinary.run(["cat", "-a", f.rootImage, "/a.txt"], environment: Self.probe)
        let expected = try String(contentsOfFile: f.rootSource + "/a.txt", encoding: .utf8)
        #expect(r.status == 0 && r.text == expected, "\(r.stderr)")
        Self.expectConfined(r)
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
        Self.expectConfined(r)
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

    /// edit: the parsing process is sandboxed, and perl still runs, in the helper that started
    /// before any image was opened (EditorAgent.swift); the result is e2fsck-clean.
    @Test func editParsesInTheSandboxAndPerlStillRuns() throws {
        let dir = try TempDir("imagemount-sandbox")
        let image = try EditCommandTests.image(dir)
        let r = try ImageMountBinary.run(["edit", "-a", image, "/etc/hostname", "-e", "s/^old/new/"], environment: Self.probe)
        #expect(r.status == 0, "\(r.stderr)")
        Self.expectConfined(r)
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"]) == "newhost\nkeep old\nnew again\n")
        // $EDITOR runs in the helper too, with the guest file's copy.
        let editor = dir.file("editor.sh")
        try Shell.check("printf '#!/bin/sh\\necho appended >> \"$1\"\\n' > \(Shell.quote(editor)) && chmod +x \(Shell.quote(editor))")
        var environment = Self.probe
        environment["EDITOR"] = editor
        let e = try ImageMountBinary.run(["edit", "-a", image, "/etc/hostname"], environment: environment)
        #expect(e.status == 0, "\(e.stderr)")
        Self.expectConfined(e)
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"]) == "newhost\nkeep old\nnew again\nappended\n")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    /// copy-in: the sources stay readable (a directory tree and a single file), nothing else.
    @Test func copyInReadsOnlyItsSources() throws {
        let f = try MountFixture.get()
        let dir = try TempDir("imagemount-sandbox")
        let image = dir.file("guest.img")
        try Shell.check("truncate -s 64M \(Shell.quote(image)) && mke2fs -q -F -t ext4 \(Shell.quote(image))")
        let r = try ImageMountBinary.run(["copy-in", "-a", image, f.rootSource + "/dir", f.rootSource + "/a.txt", "/"], environment: Self.probe)
        #expect(r.status == 0, "\(r.stderr)")
        Self.expectConfined(r)
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        try ImageMountBinary.check(["copy-out", "-a", image, "/dir", "/a.txt", out])
        let diff = try Shell.run("diff -r --no-dereference \(Shell.quote(f.rootSource + "/dir")) \(Shell.quote(out + "/dir")) && cmp \(Shell.quote(f.rootSource + "/a.txt")) \(Shell.quote(out + "/a.txt"))")
        #expect(diff.status == 0, "\(diff.text)")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    /// info (with and without --backing-chain) and check parse inside the sandbox and print
    /// what they printed before.
    @Test func infoAndCheckParseInTheSandbox() throws {
        let dir = try TempDir("imagemount-sandbox")
        let base = dir.file("base.qcow2"), overlay = dir.file("overlay.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 \(Shell.quote(base)) 64M && qemu-img create -q -f qcow2 -b \(Shell.quote(base)) -F qcow2 \(Shell.quote(overlay))")
        for arguments in [["info", "-a", overlay], ["info", "--backing-chain", "-a", overlay], ["check", "-a", overlay]] {
            let r = try ImageMountBinary.run(arguments, environment: Self.probe)
            #expect(r.status == 0, "\(arguments): \(r.stderr)")
            Self.expectConfined(r)
            var off = Self.probe
            off["IMAGEMOUNT_SANDBOX"] = "off"
            let unsandboxed = try ImageMountBinary.run(arguments, environment: off)
            #expect(r.text == unsandboxed.text, "\(arguments)")
            #expect(!unsandboxed.stderr.contains("sandbox probe"))
        }
    }
}
