import Foundation
import Testing
import TestSupport

/// `-o` options: each one either works on a real mount or fails before the mount with one
/// line (plus libguestfs's "Try" line); never exit 0 without a mount. Also --dir-cache-timeout,
/// -n/--no-sync and --fuse-help.
@Suite(.serialized) struct FuseOptionTests {
    /// A server kept in the foreground (`-f`, or `-x`) with its stderr in a log file, started
    /// detached so it holds none of the test runner's pipes; `close()` unmounts and reaps it.
    final class ForegroundMount {
        let directory: TempDir
        var path: String { directory.file("mnt") }
        var log: String { directory.file("server.log") }

        let process = Process()

        init(_ arguments: [String]) throws {
            directory = try TempDir("imagemount-fg")
            try FileManager.default.createDirectory(atPath: directory.file("mnt"), withIntermediateDirectories: false)
            FileManager.default.createFile(atPath: directory.file("server.log"), contents: nil)
            process.executableURL = URL(fileURLWithPath: try ImageMountBinary.path())
            process.arguments = arguments + [directory.file("mnt")]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: directory.file("server.log"))
            try process.run()
            let deadline = Date().addingTimeInterval(20)
            while !FuseMount.isMounted(path) {
                guard Date() < deadline, process.isRunning else {
                    close()
                    throw Shell.Failure(command: "imagemount " + arguments.joined(separator: " "), status: -1, stderr: logText)
                }
                usleep(20_000)
            }
        }

        var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        /// Number of logged requests of `op` on inode `ino` (any inode when nil).
        func requests(_ op: String) -> Int {
            logText.split(separator: "\n").filter { $0.contains("→ \(op) ") }.count
        }

        func close() {
            _ = try? ImageMountBinary.run(["unmount", "-q", "--timeout", "20", path])
            if FuseMount.isMounted(path) { _ = try? Shell.run("fusermount3 -u -z \(Shell.quote(path)) 2>/dev/null") }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }

        deinit { close() }
    }

    @Test func maxReadMounts() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage], arguments: ["-o", "max_read=65536"])
        defer { m.close() }
        #expect(FuseMount.isMounted(m.path))
        let mounts = try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)
        #expect(mounts.split(separator: "\n").contains { $0.contains(m.path) && $0.contains("max_read=65536") }, "\(mounts)")
        #expect(try Shell.check("cmp \(Shell.quote(m.path + "/random.bin")) \(Shell.quote(f.rootSource + "/random.bin")) && echo same") == "same\n")
        let tooSmall = try ImageMountBinary.run(["-a", f.rootImage, "-o", "max_read=100", m.directory.path])
        #expect(tooSmall.status == 1 && tooSmall.stderr.contains("max_read"), "\(tooSmall.stderr)")
    }

    @Test func ownersAndUmask() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage], arguments: ["-o", "uid=4321,gid=8765", "-o", "umask=027"])
        defer { m.close() }
        #expect(try Shell.check("stat -c '%u %g %a' \(Shell.quote(m.path + "/dir/owned")) \(Shell.quote(m.path + "/dir/setuid"))") == "4321 8765 640\n4321 8765 4750\n")
    }

    @Test func nameTypeAndKernelFlags() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage], arguments: ["-o", "fsname=guest-root,subtype=vmdisk,allow_other,allow_root,default_permissions,noexec,noatime"])
        defer { m.close() }
        let line = try #require(try String(contentsOfFile: "/proc/self/mounts", encoding: .utf8).split(separator: "\n").first { $0.contains(" \(m.path) ") })
        let fields = line.split(separator: " ")
        #expect(fields[0] == "guest-root" && fields[2] == "fuse.vmdisk", "\(line)")
        #expect(fields[3].contains("noexec") && fields[3].contains("allow_other") && fields[3].contains("default_permissions"), "\(line)")
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/a.txt"))") == "hello\n")
    }

    @Test func nonemptyAllowsAFullMountpoint() throws {
        let f = try MountFixture.get()
        let dir = try TempDir()
        try "x".write(toFile: dir.file("existing"), atomically: false, encoding: .utf8)
        let refused = try ImageMountBinary.run(["-a", f.rootImage, dir.path])
        #expect(refused.status == 1 && refused.stderr.contains("not empty"), "\(refused.stderr)")
        let r = try ImageMountBinary.run(["-a", f.rootImage, "-o", "nonempty", dir.path])
        defer { _ = try? ImageMountBinary.run(["unmount", "-q", dir.path]) }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Shell.check("cat \(Shell.quote(dir.file("a.txt")))") == "hello\n")
    }

    @Test(arguments: ["bogus", "uid=abc", "umask=99", "attr_timeout=-1", "kernel_cache=1", "suid", "fsname="])
    func badOptionFailsBeforeTheMount(option: String) throws {
        let f = try MountFixture.get()
        let dir = try TempDir()
        let r = try ImageMountBinary.run(["-a", f.rootImage, "-o", "allow_other," + option, dir.path])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("imagemount: -o \(option)"), "\(r.stderr)")
        #expect(!FuseMount.isMounted(dir.path))
    }

    @Test func readWriteComesOnlyFromRW() throws {
        let f = try MountFixture.get()
        let dir = try TempDir()
        let alone = try ImageMountBinary.run(["-a", f.rootImage, "-o", "rw", dir.path])
        #expect(alone.status == 1 && alone.stderr.contains("--rw"), "\(alone.stderr)")
        #expect(!FuseMount.isMounted(dir.path))
        let both = try ImageMountBinary.run(["-a", f.rootImage, "-o", "ro", "--rw", dir.path])
        #expect(both.status == 1 && both.stderr.contains("-o ro and --rw"), "\(both.stderr)")
        // -o ro alone is the default: read-only.
        let m = try FuseMount(images: [f.rootImage], arguments: ["-o", "ro"])
        defer { m.close() }
        let write = try Shell.run("touch \(Shell.quote(m.path + "/new")) 2>&1")
        #expect(write.status != 0 && write.text.contains("Read-only file system"), "\(write.text)")
        // -o rw with --rw writes.
        let scratch = try TempDir()
        let image = scratch.file("root.img")
        try Shell.check("cp --sparse=always \(Shell.quote(f.rootImage)) \(Shell.quote(image))")
        let w = try FuseMount(images: [image], arguments: ["--rw", "-o", "rw"])
        defer { w.close() }
        try Shell.check("echo y > \(Shell.quote(w.path + "/new"))")
    }

    /// attr_timeout=0 makes every stat reach the server; the read-only default (a day) does not.
    @Test func timeoutsOverrideTheDefault() throws {
        let f = try MountFixture.get()
        func getattrs(_ extra: [String]) throws -> Int {
            let m = try ForegroundMount(["-a", f.rootImage, "-f", "--debug"] + extra)
            defer { m.close() }
            try Shell.check("stat \(Shell.quote(m.path + "/a.txt")) >/dev/null")
            let before = m.requests("getattr")
            for _ in 0..<5 { try Shell.check("stat \(Shell.quote(m.path + "/a.txt")) >/dev/null") }
            return m.requests("getattr") - before
        }
        #expect(try getattrs([]) == 0)
        #expect(try getattrs(["-o", "attr_timeout=0,entry_timeout=0"]) >= 5)
        #expect(try getattrs(["--dir-cache-timeout", "0"]) >= 5)
        // -o wins over --dir-cache-timeout.
        #expect(try getattrs(["--dir-cache-timeout", "0", "-o", "attr_timeout=100,entry_timeout=100"]) == 0)
    }

    /// A negative lookup is cached for negative_timeout.
    @Test func negativeTimeout() throws {
        let f = try MountFixture.get()
        func lookups(_ extra: [String]) throws -> Int {
            let m = try ForegroundMount(["-a", f.rootImage, "-f", "--debug"] + extra)
            defer { m.close() }
            for _ in 0..<5 { _ = try Shell.run("stat \(Shell.quote(m.path + "/missing")) 2>/dev/null") }
            return m.logText.split(separator: "\n").filter { $0.contains("→ lookup ") && $0.hasSuffix(" missing") }.count
        }
        #expect(try lookups([]) == 1)
        #expect(try lookups(["-o", "negative_timeout=0"]) >= 5)
    }

    /// direct_io: every read reaches the server; the read-only default keeps the page cache.
    @Test func directIOAndKernelCache() throws {
        let f = try MountFixture.get()
        func reads(_ extra: [String]) throws -> Int {
            let m = try ForegroundMount(["-a", f.rootImage, "-f", "--debug"] + extra)
            defer { m.close() }
            try Shell.check("cat \(Shell.quote(m.path + "/dir/sub/deeper/file")) >/dev/null")
            let before = m.requests("read")
            for _ in 0..<3 { try Shell.check("cat \(Shell.quote(m.path + "/dir/sub/deeper/file")) >/dev/null") }
            return m.requests("read") - before
        }
        #expect(try reads([]) == 0)
        #expect(try reads(["-o", "kernel_cache"]) == 0)
        #expect(try reads(["-o", "direct_io"]) >= 3)
    }

    @Test func traceStaysInTheForeground() throws {
        let f = try MountFixture.get()
        let m = try ForegroundMount(["-a", f.rootImage, "-x"])
        defer { m.close() }
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/a.txt"))") == "hello\n")
        #expect(m.requests("lookup") > 0, "\(m.logText)")
    }

    @Test func verboseAndNoSyncAreAccepted() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage], arguments: ["-v", "-n", "--no-sync", "--selinux"])
        defer { m.close() }
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/a.txt"))") == "hello\n")
    }

    @Test func fuseHelpListsTheOptions() throws {
        let r = try ImageMountBinary.run(["--fuse-help"])
        #expect(r.status == 0, "\(r.stderr)")
        for option in ["kernel_cache", "attr_timeout=", "entry_timeout=", "negative_timeout=", "direct_io", "allow_other",
                       "allow_root", "default_permissions", "uid=", "gid=", "umask=", "max_read=", "fsname=", "subtype=", "nonempty"] {
            #expect(r.text.contains("-o " + option), "\(option) missing")
        }
        // It needs no image nor mountpoint, and only mount has it.
        #expect(try ImageMountBinary.run(["mount", "--fuse-help"]).status == 0)
        #expect(try ImageMountBinary.run(["cat", "--fuse-help"]).status == 1)
    }
}
