import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The commands with `-a rbd:rbd/IMAGE` and `-a rbd://127.0.0.1:PORT/rbd/IMAGE` against the
/// run's one-node Ceph cluster (`CephCluster`): what they print equals the sample tree and
/// what they print over the local image; writes (copy-in, edit, a `--rw` mount) leave an image
/// whose `rbd export` `e2fsck -fn` finds clean and that holds what the same writes make of a
/// local copy; snapshots read as taken and refuse writing; the exclusive lock refuses a second
/// writer both ways; a missing pool or image is one line and a non-zero exit.
@Suite(.serialized) struct RBDCommandTests {
    static func cluster() throws -> CephCluster { try CephCluster.shared() }

    static func images() throws -> (raw: String, qcow2: String) {
        let raw = try Fixtures.image("ext4", type: "ext4")
        return (raw, try Fixtures.qcow2(raw))
    }

    /// (label, what to import, -a arguments): the raw image by QEMU's name with --rbd-conf and
    /// --keyring; the same by libguestfs's URI naming the monitor (no conf at all); the qcow2
    /// file stored in RBD as it is, --format=qcow2.
    static let spellings = ["rbd: raw", "rbd:// raw", "rbd: qcow2"]

    static func drive(_ kind: String) throws -> [String] {
        let c = try cluster()
        let (raw, qcow2) = try images()
        switch kind {
        case "rbd: raw":
            return c.arguments + ["-a", try c.importImage(raw, prefix: "cmd").spec]
        case "rbd:// raw":
            let name = try c.importImage(raw, prefix: "uri").name
            return ["--keyring", c.keyring, "--rbd-conf", "/dev/null", "-a", "rbd://\(c.monitor)/rbd/\(name)"]
        default:
            return c.arguments + ["--format=qcow2", "-a", try c.importImage(qcow2, prefix: "cmdq").spec]
        }
    }

    @Test(arguments: spellings)
    func readingCommandsMatchTheLocalImage(_ kind: String) throws {
        let (raw, _) = try Self.images()
        let a = try Self.drive(kind)
        for relative in Fixtures.tree.regularFiles.prefix(20) where !relative.hasPrefix("many/") {
            let result = try ImageMountBinary.run(["cat"] + a + ["/" + relative])
            #expect(result.status == 0, "\(relative): \(result.stderr)")
            #expect(result.stdout == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + relative))), "\(relative)")
        }
        let ours = try ImageMountBinary.check(["ls", "-lR"] + a + ["/etc"])
        #expect(ours == (try ImageMountBinary.check(["ls", "-lR", "-a", raw, "/etc"])))
        let dfRBD = try ImageMountBinary.check(["df", "--csv"] + a)
        let dfLocal = try ImageMountBinary.check(["df", "--csv", "-a", raw])
        func numbers(_ csv: String) -> [String] { csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").dropFirst().joined(separator: ",") } }
        #expect(!numbers(dfRBD).isEmpty && numbers(dfRBD) == numbers(dfLocal), "\(dfRBD) vs \(dfLocal)")
        let out = try TempDir()
        let copy = try ImageMountBinary.run(["copy-out"] + a + ["/etc", out.path])
        #expect(copy.status == 0, "\(copy.stderr)")
        let diff = try Shell.run("diff -r \(Shell.quote(Fixtures.tree.root + "/etc")) \(Shell.quote(out.path + "/etc"))")
        #expect(diff.status == 0, "\(diff.text)\(diff.stderr)")
    }

    /// The Seccomp line of /proc/PID/status: 2 is "filter" (the sandbox's).
    static func seccompMode(_ pid: Int32) -> String? {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }.map { $0.dropFirst(8).trimmingCharacters(in: .whitespaces) }
    }

    /// guestmount-style `-i` over an RBD image, with the sandbox on (the server's seccomp mode
    /// says so): the inspected guest's files read through FUSE. Then the OSD is marked down, so
    /// librados must reconnect to it from inside the sandbox (a new socket): reads go on.
    @Test func inspectedMountReadsThroughFUSEInTheSandbox() throws {
        let c = try Self.cluster()
        let g = try GuestFixtures.gptWithBootAndData()
        let spec = try c.importImage(g.image, prefix: "inspect").spec
        let m = try FuseMount(images: [spec], arguments: c.arguments + ["-i", "--ro"])
        defer { m.close() }
        let pid = try #require(m.serverPID)
        #expect(Self.seccompMode(pid) == "2", "the mount server is not in its seccomp sandbox")
        let hostname = try String(contentsOfFile: m.path + "/etc/hostname", encoding: .utf8)
        #expect(hostname == g.hostname + "\n")
        // The OSD is told it is down: it comes back on new ports, and the client must connect again.
        try Shell.check("timeout 30 ceph -c \(Shell.quote(c.conf)) osd down 0 >/dev/null 2>&1")
        let up = try Shell.run("for i in $(seq 1 150); do timeout 10 ceph -c \(Shell.quote(c.conf)) osd dump --format=json 2>/dev/null | grep -q '\"up\":1' && exit 0; sleep 0.2; done; exit 1")
        #expect(up.status == 0, "osd.0 did not come back up")
        let ls = try Data(contentsOf: URL(fileURLWithPath: m.path + "/bin/ls"))
        #expect(ls == (try Data(contentsOf: URL(fileURLWithPath: "/bin/ls"))))
        #expect(kill(pid, 0) == 0, "the server died")
    }

    /// The same writes through RBD and on a local copy: copy-in, edit, then a `--rw` mount with a
    /// small workload (directories, files written, appended, renamed, truncated, removed). Then
    /// `rbd export` of the result passes `e2fsck -fn`, and both images hold the same tree.
    @Test func writesEqualTheSameWritesOnALocalCopy() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "rw")
        let dir = try TempDir()
        let local = dir.file("local.img")
        try Shell.check("cp \(Shell.quote(raw)) \(Shell.quote(local))")
        try Data("into ceph\n".utf8).write(to: URL(fileURLWithPath: dir.file("added.txt")))
        let workload = """
            set -e
            mkdir -p "$M/work/deep/er"
            head -c 3000000 /bin/ls > "$M/work/big"
            printf 'one\\n' > "$M/work/deep/er/a"; printf 'two\\n' >> "$M/work/deep/er/a"
            mv "$M/work/deep/er/a" "$M/work/renamed"
            truncate -s 1234 "$M/work/big"
            rm -f "$M/etc/hostname.bak" "$M/work/deep/er/none"
            ln -s renamed "$M/work/link"
            rmdir "$M/work/deep/er"
            sync
            """
        for a in [c.arguments + ["-a", spec], ["-a", local]] {
            try ImageMountBinary.check(["copy-in"] + a + [dir.file("added.txt"), "/etc"])
            try ImageMountBinary.check(["edit"] + a + ["/etc/hostname", "-e", "s/^.*$/edited-in-ceph/"])
            let m = try FuseMount(images: [], arguments: a + ["--rw", "-m", "/dev/sda"])
            defer { m.close() }
            let run = try Shell.run("M=\(Shell.quote(m.path)); " + workload)
            #expect(run.status == 0, "\(run.stderr)")
            m.close()
        }
        try c.exportImage(name, to: dir.file("export.img"))
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(dir.file("export.img")))")
        #expect(fsck.status == 0, "\(fsck.text)\(fsck.stderr)")
        // The same tree: names, types, sizes, modes and contents (times differ, of course).
        func tree(_ image: String) throws -> String {
            let out = try TempDir()
            try ImageMountBinary.check(["copy-out", "-a", image, "/", out.path])
            return try Shell.check("cd \(Shell.quote(out.path)) && find . -printf '%p %y %s %m %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum")
        }
        let exported = try tree(dir.file("export.img")), expected = try tree(local)
        #expect(exported == expected)
        #expect(exported.contains("./root/work/renamed f 8 ") && exported.contains("./root/work/link l 7 777 renamed") && exported.contains("./root/etc/added.txt f 10 "), "\(exported.prefix(2000))")
        #expect(try Shell.check("debugfs -R 'cat /etc/hostname' \(Shell.quote(dir.file("export.img"))) 2>/dev/null") == "edited-in-ceph\n")
    }

    /// `rbd snap create`, then writes to the head: the snapshot reads as it was; writing to it
    /// is refused in one line naming it, with a non-zero exit.
    @Test func snapshotReadsAsTakenAndRefusesWriting() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "csnap")
        try c.rbd("snap create rbd/\(name)@before")
        try ImageMountBinary.check(["edit"] + c.arguments + ["-a", spec, "/etc/hostname", "-e", "s/^.*$/after/"])
        #expect(try ImageMountBinary.check(["cat"] + c.arguments + ["-a", spec, "/etc/hostname"]) == "after\n")
        let before = try ImageMountBinary.check(["cat"] + c.arguments + ["-a", spec + "@before", "/etc/hostname"])
        #expect(before == (try String(contentsOfFile: Fixtures.tree.root + "/etc/hostname", encoding: .utf8)))
        let dir = try TempDir()
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: dir.file("x.txt")))
        let refused = try ImageMountBinary.run(["copy-in"] + c.arguments + ["-a", spec + "@before", dir.file("x.txt"), "/"])
        let lines = refused.stderr.split(separator: "\n")
        #expect(refused.status != 0 && lines.count == 1 && lines[0].contains(spec + "@before") && lines[0].contains("read-only"), "\(refused.stderr)")
    }

    /// The exclusive lock, both ways: while a `--rw` mount holds it, copy-in is refused in one
    /// line and `rbd lock add` fails; once it is unmounted, a lock added with `rbd lock add`
    /// refuses copy-in in one line, and `rbd lock rm` lets it write again.
    @Test func exclusiveLockRefusesASecondWriterBothWays() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let (name, spec) = try c.importImage(raw, prefix: "clock")
        let dir = try TempDir()
        try Data("x\n".utf8).write(to: URL(fileURLWithPath: dir.file("x.txt")))
        let copyIn = ["copy-in"] + c.arguments + ["-a", spec, dir.file("x.txt"), "/"]
        do {
            let m = try FuseMount(images: [spec], arguments: c.arguments + ["--rw", "-m", "/dev/sda"])
            defer { m.close() }
            let refused = try ImageMountBinary.run(copyIn)
            let lines = refused.stderr.split(separator: "\n")
            #expect(refused.status != 0 && lines.count == 1 && lines[0].contains(spec) && lines[0].contains("lock"), "\(refused.stderr)")
            #expect(try c.rbdResult("lock add rbd/\(name) manual").status != 0, "rbd lock add succeeded while imagemount held the lock")
            // Readers go on.
            #expect(try ImageMountBinary.check(["cat"] + c.arguments + ["-a", spec, "/etc/hostname"]).isEmpty == false)
            try Data("mounted\n".utf8).write(to: URL(fileURLWithPath: m.path + "/written-while-locked"))
        }
        try c.rbd("lock add rbd/\(name) manual")
        let refused = try ImageMountBinary.run(copyIn)
        let lines = refused.stderr.split(separator: "\n")
        #expect(refused.status != 0 && lines.count == 1 && lines[0].contains(spec) && lines[0].contains("rbd lock"), "\(refused.stderr)")
        let lockers = try c.rbd("lock ls --format json rbd/\(name)")
        let client = try #require(lockers.range(of: #"client\.[0-9]+"#, options: .regularExpression).map { String(lockers[$0]) })
        try c.rbd("lock rm rbd/\(name) manual \(client)")
        try ImageMountBinary.check(copyIn)
        #expect(try ImageMountBinary.check(["cat"] + c.arguments + ["-a", spec, "/written-while-locked"]) == "mounted\n")
    }

    /// `info -a rbd:…` prints what `qemu-img info` prints for the same image, but for the image
    /// line (qemu-img names it by a json: description), in text and JSON.
    @Test func infoMatchesQemuImgInfo() throws {
        let c = try Self.cluster()
        let (raw, _) = try Self.images()
        let spec = try c.importImage(raw, prefix: "info").spec
        let env = "CEPH_CONF=\(Shell.quote(c.conf)) "
        let ours = try ImageMountBinary.check(["info"] + c.arguments + ["-a", spec])
        let theirs = try Shell.check(env + "qemu-img info \(Shell.quote(spec))")
        func body(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.hasPrefix("image:") } }
        #expect(body(ours) == body(theirs), "\(ours)\nvs\n\(theirs)")
        #expect(ours.hasPrefix("image: \(spec)\n"))
        let ourJSON = try ImageMountBinary.check(["info", "--output=json"] + c.arguments + ["-a", spec])
        let theirJSON = try Shell.check(env + "qemu-img info --output=json \(Shell.quote(spec))")
        func fields(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.contains("\"filename\"") } }
        #expect(fields(ourJSON) == fields(theirJSON), "\(ourJSON)\nvs\n\(theirJSON)")
    }

    /// A missing pool or image: one line naming it, a non-zero exit, no hang.
    @Test(arguments: ["rbd:nosuchpool/x", "rbd:rbd/no-such-image"])
    func missingPoolOrImageIsOneLine(_ spec: String) throws {
        let c = try Self.cluster()
        let result = try ImageMountBinary.run(["ls"] + c.arguments + ["-a", spec, "/"])
        let lines = result.stderr.split(separator: "\n")
        #expect(result.status != 0 && lines.count == 1 && lines[0].contains(spec) && lines[0].contains("does not exist"), "\(result.stderr)")
    }
}
