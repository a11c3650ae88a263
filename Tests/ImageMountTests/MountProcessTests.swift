import Foundation
import Testing
import TestSupport

/// The life of the mount server: readiness, unmount that waits, signals, crashes, failures.
@Suite(.serialized)
struct MountProcessTests {
    /// Whether `pid` is gone (an unreaped zombie counts as gone).
    static func exited(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return true }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    static func waitUntil(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    @Test func unmountWaitsForTheServer() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let pid = try #require(m.serverPID)
        #expect(FuseMount.isMounted(m.path))
        // The command returned only once the mount answers.
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/a.txt"))") == "hello\n")
        let r = try ImageMountBinary.run(["unmount", m.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.exited(pid), "server still running right after unmount returned")
        #expect(!FuseMount.isMounted(m.path))
        let again = try ImageMountBinary.run(["unmount", m.path])
        #expect(again.status == 2 && again.stderr.contains("not mounted"))
        #expect(try ImageMountBinary.run(["unmount", "-q", m.path]).stderr.isEmpty)
    }

    @Test func sigtermUnmountsCleanly() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let pid = try #require(m.serverPID)
        kill(pid, SIGTERM)
        #expect(Self.waitUntil { Self.exited(pid) })
        // The sandboxed server cannot unmount itself; fusermount3's auto_unmount helper takes
        // the mount down as the server's /dev/fuse descriptor closes, a moment after it exits.
        #expect(Self.waitUntil { !FuseMount.isMounted(m.path) })
        #expect(!FileManager.default.fileExists(atPath: m.pidFile), "--pid-file removed on exit")
    }

    @Test func killedServerLeavesNoMount() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let pid = try #require(m.serverPID)
        kill(pid, SIGKILL)
        #expect(Self.waitUntil { !FuseMount.isMounted(m.path) }, "auto_unmount should remove the dead server's mount")
    }

    @Test func unmountClearsAStaleMount() throws {
        let f = try MountFixture.get()
        // Without auto_unmount a killed server leaves the mount behind ("Transport endpoint is not connected").
        let m = try FuseMount(images: [f.rootImage], arguments: ["--no-auto-unmount"])
        defer { m.close() }
        let pid = try #require(m.serverPID)
        kill(pid, SIGKILL)
        _ = Self.waitUntil { Self.exited(pid) }
        #expect(FuseMount.isMounted(m.path))
        let r = try ImageMountBinary.run(["unmount", m.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FuseMount.isMounted(m.path))
    }

    @Test func readyDescriptorGetsOneByte() throws {
        let f = try MountFixture.get()
        let dir = try TempDir("imagemount-fd")
        try FileManager.default.createDirectory(atPath: dir.file("mnt"), withIntermediateDirectories: false)
        defer { _ = try? ImageMountBinary.run(["unmount", "-q", dir.file("mnt")]) }
        let command = "\(Shell.quote((try ImageMountBinary.path()))) -a \(Shell.quote(f.rootImage)) --fd 7 \(Shell.quote(dir.file("mnt"))) 7>\(Shell.quote(dir.file("ready")))"
        try Shell.check(command)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("ready"))).count == 1)
        #expect(FuseMount.isMounted(dir.file("mnt")))
    }

    @Test func foregroundServer() throws {
        let f = try MountFixture.get()
        let dir = try TempDir("imagemount-fg")
        let mnt = dir.file("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: false)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: (try ImageMountBinary.path()))
        process.arguments = ["mount", "-a", f.rootImage, "--no-fork", mnt]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            _ = try? Shell.run("fusermount3 -u -z \(Shell.quote(mnt)) 2>/dev/null")
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        #expect(Self.waitUntil(seconds: 20) { FuseMount.isMounted(mnt) })
        #expect(try Shell.check("cat \(Shell.quote(mnt + "/a.txt"))") == "hello\n")
        let r = try ImageMountBinary.run(["unmount", mnt])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Self.waitUntil { !process.isRunning })
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}

/// Every failure: a clear message, a non-zero exit, and nothing left mounted.
@Suite(.serialized)
struct MountFailureTests {
    func expectFailure(_ arguments: [String], mountdir: String, message: String) throws {
        let r = try ImageMountBinary.run(arguments + [mountdir])
        defer { if FuseMount.isMounted(mountdir) { _ = try? Shell.run("fusermount3 -u -z \(Shell.quote(mountdir))") } }
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
        #expect(r.stderr.hasPrefix("imagemount: ") || r.stderr.hasPrefix("Error: "))
        #expect(!FuseMount.isMounted(mountdir))
    }

    func emptyDirectory() throws -> TempDir {
        let dir = try TempDir("imagemount-fail")
        try FileManager.default.createDirectory(atPath: dir.file("mnt"), withIntermediateDirectories: false)
        return dir
    }

    @Test func missingImage() throws {
        let d = try emptyDirectory()
        try expectFailure(["-a", d.file("missing.img")], mountdir: d.file("mnt"), message: "No such file")
    }

    @Test func wrongDevice() throws {
        let f = try MountFixture.get(), d = try emptyDirectory()
        try expectFailure(["-a", f.rootImage, "-m", "/dev/sdb1"], mountdir: d.file("mnt"), message: "no such device")
    }

    @Test func wrongMountpointInGuest() throws {
        let f = try MountFixture.get(), d = try emptyDirectory()
        try expectFailure(["-a", f.rootImage, "-a", f.bootImage, "-m", "/dev/sda", "-m", "/dev/sdb:/nowhere"],
                          mountdir: d.file("mnt"), message: "does not exist")
    }

    @Test func missingMountpoint() throws {
        let f = try MountFixture.get(), d = try emptyDirectory()
        try expectFailure(["-a", f.rootImage], mountdir: d.file("absent"), message: "does not exist")
    }

    @Test func mountpointNotEmpty() throws {
        let f = try MountFixture.get(), d = try emptyDirectory()
        _ = FileManager.default.createFile(atPath: d.file("mnt/file"), contents: Data())
        try expectFailure(["-a", f.rootImage], mountdir: d.file("mnt"), message: "not empty")
    }

    @Test func mountpointAlreadyMounted() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let r = try ImageMountBinary.run(["-a", f.rootImage, m.path])
        #expect(r.status != 0 && r.stderr.contains("already mounted"))
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/a.txt"))") == "hello\n", "the first mount still works")
    }

    @Test func damagedImage() throws {
        let f = try MountFixture.get(), d = try emptyDirectory()
        let bad = d.file("bad.img")
        try Shell.check("cp \(Shell.quote(f.bootImage)) \(Shell.quote(bad)) && printf '\\000\\000' | dd of=\(Shell.quote(bad)) bs=1 seek=1080 conv=notrunc status=none")
        try expectFailure(["-a", bad], mountdir: d.file("mnt"), message: "no filesystem found that imagemount opens")
        let truncated = d.file("short.img")
        try Shell.check("head -c 600000 \(Shell.quote(f.rootImage)) > \(Shell.quote(truncated))")
        try expectFailure(["-a", truncated], mountdir: d.file("mnt"), message: "larger than")
    }

    @Test func contradictoryReadWriteOptionsAreRefused() throws {
        let f = try MountFixture.get(), d = try emptyDirectory()
        try expectFailure(["-a", f.rootImage, "--rw", "-o", "ro"], mountdir: d.file("mnt"), message: "cannot be used together")
        try expectFailure(["-a", f.rootImage, "--ro", "-o", "rw"], mountdir: d.file("mnt"), message: "cannot be used together")
    }
}
