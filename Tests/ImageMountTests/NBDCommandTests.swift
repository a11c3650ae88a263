import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The commands with `-a nbd+unix:///…` and `-a nbd://127.0.0.1:PORT/`: what they print over an
/// export equals the sample tree and what they print over the local image; writes go through a
/// writable qemu-nbd export and leave a filesystem `e2fsck -fn` finds clean; a server killed
/// mid-command gives one line naming the URI and a non-zero exit, without hanging.
@Suite struct NBDCommandTests {
    static func images() throws -> (raw: String, qcow2: String) {
        let raw = try Fixtures.image("ext4", type: "ext4")
        return (raw, try Fixtures.qcow2(raw))
    }

    /// (label, server, arguments before -a): qcow2 served raw by qemu-nbd; qcow2 served as a
    /// file by nbdkit with --format=qcow2; the raw image over TCP behind nbdkit's delay filter.
    static let servers = ["qemu-nbd -f qcow2", "nbdkit file --format=qcow2", "nbdkit delay tcp"]

    static func serve(_ kind: String) throws -> (NBDServer, [String]) {
        let (raw, qcow2) = try images()
        switch kind {
        case "qemu-nbd -f qcow2": return (try .qemuNBD(qcow2, format: "qcow2", writable: false), [])
        case "nbdkit file --format=qcow2": return (try .nbdkit("file file=\(Shell.quote(qcow2))"), ["--format=qcow2"])
        default: return (try .nbdkit("--filter=delay file file=\(Shell.quote(raw)) rdelay=1ms", tcp: true), [])
        }
    }

    @Test(arguments: servers)
    func readingCommandsMatchTheLocalImage(_ kind: String) throws {
        let (raw, _) = try Self.images()
        let (server, format) = try Self.serve(kind)
        defer { server.stop() }
        let a = format + ["-a", server.uri]
        // cat: every small file equals the tree's.
        for relative in Fixtures.tree.regularFiles.prefix(20) where !relative.hasPrefix("many/") {
            let result = try ImageMountBinary.run(["cat"] + a + ["/" + relative])
            #expect(result.status == 0, "\(relative): \(result.stderr)")
            #expect(result.stdout == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + relative))), "\(relative)")
        }
        // ls -lR and df print what they print for the local file (df's name column aside).
        let ours = try ImageMountBinary.check(["ls", "-lR"] + a + ["/etc"])
        #expect(ours == (try ImageMountBinary.check(["ls", "-lR", "-a", raw, "/etc"])))
        let dfNBD = try ImageMountBinary.check(["df", "--csv"] + a)
        let dfLocal = try ImageMountBinary.check(["df", "--csv", "-a", raw])
        func numbers(_ csv: String) -> [String] { csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").dropFirst().joined(separator: ",") } }
        #expect(!numbers(dfNBD).isEmpty && numbers(dfNBD) == numbers(dfLocal), "\(dfNBD) vs \(dfLocal)")
        // copy-out of a folder: diff -r against the tree.
        let out = try TempDir()
        let copy = try ImageMountBinary.run(["copy-out"] + a + ["/etc", out.path])
        #expect(copy.status == 0, "\(copy.stderr)")
        let diff = try Shell.run("diff -r \(Shell.quote(Fixtures.tree.root + "/etc")) \(Shell.quote(out.path + "/etc"))")
        #expect(diff.status == 0, "\(diff.text)\(diff.stderr)")
    }

    /// guestmount-style `-i` over an export: the inspected guest's files read through FUSE.
    @Test func inspectedMountReadsThroughFUSE() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        let server = try NBDServer.nbdkit("file file=\(Shell.quote(g.image))")
        defer { server.stop() }
        let m = try FuseMount(images: [server.uri], arguments: ["-i", "--ro"])
        defer { m.close() }
        let hostname = try String(contentsOfFile: m.path + "/etc/hostname", encoding: .utf8)
        #expect(hostname == g.hostname + "\n")
        let ls = try Data(contentsOf: URL(fileURLWithPath: m.path + "/bin/ls"))
        #expect(ls == (try Data(contentsOf: URL(fileURLWithPath: "/bin/ls"))))
    }

    /// copy-in and edit through a writable qemu-nbd export of a raw copy; once the server has
    /// exited, `e2fsck -fn` finds the image clean and debugfs reads what was written.
    @Test func copyInAndEditThroughAWritableExport() throws {
        let (raw, _) = try Self.images()
        let dir = try TempDir()
        let image = dir.file("rw.img")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(image))")
        try Data("over nbd\n".utf8).write(to: URL(fileURLWithPath: dir.file("added.txt")))
        let server = try NBDServer.qemuNBD(image, format: "raw", writable: true)
        defer { server.stop() }
        try ImageMountBinary.check(["copy-in", "--format=raw", "-a", server.uri, dir.file("added.txt"), "/etc"])
        try ImageMountBinary.check(["edit", "--format=raw", "-a", server.uri, "/etc/hostname", "-e", "s/^.*$/edited-over-nbd/"])
        #expect(try ImageMountBinary.check(["cat", "-a", server.uri, "/etc/added.txt"]) == "over nbd\n")
        server.stop()
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image))")
        #expect(fsck.status == 0, "\(fsck.text)\(fsck.stderr)")
        #expect(try Shell.check("debugfs -R 'cat /etc/added.txt' \(Shell.quote(image)) 2>/dev/null") == "over nbd\n")
        #expect(try Shell.check("debugfs -R 'cat /etc/hostname' \(Shell.quote(image)) 2>/dev/null") == "edited-over-nbd\n")
    }

    /// Writing to a read-only export: one line naming the URI, non-zero exit.
    @Test func writingToAReadOnlyExportIsRefused() throws {
        let (_, qcow2) = try Self.images()
        let dir = try TempDir()
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: dir.file("x.txt")))
        let server = try NBDServer.qemuNBD(qcow2, format: "qcow2", writable: false)
        defer { server.stop() }
        let result = try ImageMountBinary.run(["copy-in", "-a", server.uri, dir.file("x.txt"), "/"])
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains(server.uri) && lines[0].contains("read-only"), "\(result.stderr)")
    }

    /// The server is killed while copy-out reads (each read request delayed 100 ms): the command
    /// ends within the bound with a non-zero status and one line naming the URI.
    @Test func serverKilledMidCommand() throws {
        let (raw, _) = try Self.images()
        let server = try NBDServer.nbdkit("--filter=delay file file=\(Shell.quote(raw)) rdelay=100ms")
        defer { server.stop() }
        let out = try TempDir()
        let binary = try ImageMountBinary.path()
        let start = ContinuousClock.now
        let result = try Shell.run("(sleep 1.5; kill -9 \(server.pid)) & timeout 60 \(Shell.quote(binary)) copy-out -a \(Shell.quote(server.uri)) / \(Shell.quote(out.path)); status=$?; wait; exit $status")
        #expect(ContinuousClock.now - start < .seconds(30))
        #expect(result.status != 0 && result.status != 124, "status \(result.status)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.contains(server.uri) == true, "\(result.stderr)")
    }

    /// A URI libnbd may not be handed: refused in one line before anything connects.
    @Test func vsockIsRefused() throws {
        let result = try ImageMountBinary.run(["ls", "-a", "nbd+vsock:///", "/"])
        #expect(result.status != 0)
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("vsock"), "\(result.stderr)")
    }
}

/// libnbd, libcrypto, libxml2, libarchive, librbd and librpm are loaded when first needed, not at
/// start-up (Sources/CNbd, CCrypto, CXML2, CArchive, CRbd, CRpm): a command on a local unencrypted
/// image maps none of them, nor what they bring (GnuTLS, ICU, librados and Ceph's 30 libraries,
/// Lua and SQLite),
/// which linked cost every short command about 4 ms of CPU before librbd and libarchive came;
/// the NBD, RBD, LUKS, tar, `ls --checksum`, `-d`, `--xpath` and RPM inspect tests show the
/// loaded paths.
@Suite struct LazyLibraryTests {
    static let lazy = ["libnbd", "libgnutls", "libcrypto", "libxml2", "libicu", "libarchive", "librbd", "librados", "librpm", "liblua", "libsqlite3"]

    @Test func theBinaryNeedsNoneOfThem() throws {
        let needed = try Shell.run("readelf -d \(Shell.quote(try ImageMountBinary.path())) | grep NEEDED")
        #expect(needed.status == 0)
        for library in Self.lazy { #expect(!needed.text.contains(library), "\(library) is linked") }
    }

    @Test func aLocalCommandLoadsNoneOfThem() throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        // LD_DEBUG=libs: the loader names every library it opens and initialises.
        let run = try Shell.run("LD_DEBUG=libs \(Shell.quote(try ImageMountBinary.path())) cat -a \(Shell.quote(raw)) /etc/hostname 2>&1 >/dev/null")
        #expect(run.status == 0)
        #expect(run.text.contains("calling init"), "LD_DEBUG=libs printed nothing: \(run.text.prefix(200))")
        for library in Self.lazy { #expect(!run.text.contains(library), "\(library) was loaded") }
    }
}
