import Foundation
import Testing
import TestSupport

/// The spellings virt-* and guestmount users type, so their scripts run unchanged: -r/-w,
/// -v/-x, -V/--version, --long-options/--short-options, --echo-keys, --selinux, --format (with
/// and without a value, by position), --blocksize, and usage errors in libguestfs's shape.
@Suite struct CLISpellingTests {
    static let commands = ["mount", "unmount", "cat", "ls", "copy-out", "copy-in", "tar-out", "tar-in", "edit", "df", "filesystems", "inspect", "info", "check"]

    @Test func versionEverywhere() throws {
        for spelling in ["-V", "--version"] {
            for command in [[]] + Self.commands.map({ [$0] }) {
                let r = try ImageMountBinary.run(command + [spelling])
                #expect(r.status == 0 && r.text == "imagemount 0.1.0\n", "\(command) \(spelling): \(r.status) \(r.stderr)")
            }
        }
        // It acts where it stands, before later mistakes (as getopt meets it).
        #expect(try ImageMountBinary.run(["ls", "-V", "--no-such-option"]).status == 0)
        let f = try MountFixture.get()
        let clustered = try ImageMountBinary.run(["ls", "-lV", "-a", f.rootImage, "/"])
        #expect(clustered.status == 0 && clustered.text == "imagemount 0.1.0\n", "\(clustered.text)")
    }

    @Test func longAndShortOptions() throws {
        let long = try ImageMountBinary.run(["--long-options"])
        #expect(long.status == 0)
        let longs = Set(long.text.split(separator: "\n").map(String.init))
        for o in ["--add", "--domain", "--connect", "--format", "--blocksize", "--echo-keys", "--keys-from-stdin", "--key",
                  "--inspector", "--mount", "--ro", "--rw", "--option", "--dir-cache-timeout", "--no-sync", "--fuse-help",
                  "--no-fork", "--pid-file", "--fd", "--selinux", "--verbose", "--trace", "--version", "--help"] {
            #expect(longs.contains(o), "\(o) missing from guestmount-style --long-options")
        }
        #expect(!longs.contains("--long-options") && !longs.contains("--daemon-ready-fd") && longs.allSatisfy { $0.hasPrefix("--") })
        let short = try ImageMountBinary.run(["--short-options"])
        let shorts = Set(short.text.split(separator: "\n").map(String.init))
        for o in ["-a", "-c", "-d", "-i", "-m", "-n", "-o", "-r", "-v", "-V", "-w", "-x"] {
            #expect(shorts.contains(o), "\(o) missing from --short-options")
        }
        let ls = try ImageMountBinary.run(["ls", "--short-options"])
        #expect(Set(ls.text.split(separator: "\n").map(String.init)).isSuperset(of: ["-a", "-l", "-R", "-h", "-v", "-x", "-V", "-m"]))
        #expect(try ImageMountBinary.run(["unmount", "--long-options"]).text.contains("--quiet"))
    }

    @Test func usageErrorsHaveLibguestfsShape() throws {
        let cases: [([String], String, String)] = [
            (["--foo"], "imagemount: unrecognized option '--foo'", "imagemount"),
            (["--foo=1", "-a", "x", "/mnt"], "imagemount: unrecognized option '--foo=1'", "imagemount"),
            (["ls", "--foo"], "imagemount: unrecognized option '--foo'", "imagemount ls"),
            (["cat", "-q", "-a", "x"], "imagemount: invalid option -- 'q'", "imagemount cat"),
            (["df", "-a", "x", "-hZ"], "imagemount: invalid option -- 'Z'", "imagemount df"),
            (["ls"], "imagemount: no disk image given: add one with -a IMAGE or -d DOMAIN", "imagemount ls"),
            (["cat", "-a"], "imagemount: option requires an argument -- 'a'", "imagemount cat"),
            (["ls", "-a", "x", "--format"], "imagemount: --format=auto comes after the last -a: it applies to the -a options after it", "imagemount ls"),
            (["mount", "--pid-file"], "imagemount: option '--pid-file' requires an argument", "imagemount mount"),
        ]
        for (arguments, first, program) in cases {
            let r = try ImageMountBinary.run(arguments)
            #expect(r.status == 1, "\(arguments): \(r.status)")
            #expect(r.stderr == first + "\nTry ‘\(program) --help’ for more information.\n", "\(arguments): \(r.stderr)")
        }
    }

    @Test func readOnlyAndReadWriteShortSpellings() throws {
        let f = try MountFixture.get()
        let dir = try TempDir()
        let image = dir.file("root.img")
        try Shell.check("cp --sparse=always \(Shell.quote(f.rootImage)) \(Shell.quote(image))")
        do {
            let m = try FuseMount(images: [image], arguments: ["-w"])
            defer { m.close() }
            try Shell.check("echo via-w > \(Shell.quote(m.path + "/w.txt"))")
        }
        do {
            let m = try FuseMount(images: [image], arguments: ["-r"])
            defer { m.close() }
            let w = try Shell.run("touch \(Shell.quote(m.path + "/r.txt")) 2>&1")
            #expect(w.status != 0 && w.text.contains("Read-only"), "\(w.text)")
        }
        #expect(try ImageMountBinary.check(["cat", "-r", "-a", image, "/w.txt"]) == "via-w\n")
        let both = try ImageMountBinary.run(["cat", "-r", "-w", "-a", image, "/w.txt"])
        #expect(both.status == 1 && both.stderr.contains("--ro and --rw"))
    }

    @Test func verboseTracesWhatIsOpened() throws {
        let f = try MountFixture.get()
        for flag in ["-v", "--verbose", "-x", "--trace"] {
            let r = try ImageMountBinary.run(["cat", flag, "--selinux", "-a", f.partitionedImage, "-m", "/dev/sda2", "/a.txt"])
            #expect(r.status == 0 && r.text == "hello\n", "\(r.stderr)")
            #expect(r.stderr.contains("trace: add drive 0: \(f.partitionedImage) format=probed blocksize=512 readonly"), "\(r.stderr)")
            #expect(r.stderr.contains("trace: mount /dev/sda2 on / read-only"), "\(r.stderr)")
        }
        #expect(try ImageMountBinary.run(["cat", "-a", f.partitionedImage, "-m", "/dev/sda2", "/a.txt"]).stderr.isEmpty)
        // Every command that opens images traces, and takes --selinux and --echo-keys.
        let dir = try TempDir()
        let scratch = dir.file("root.img"), host = dir.file("in.txt")
        try Shell.check("cp --sparse=always \(Shell.quote(f.rootImage)) \(Shell.quote(scratch)) && echo in > \(Shell.quote(host))")
        let commands: [[String]] = [
            ["ls", "-a", f.rootImage, "/"], ["df", "-a", f.rootImage], ["filesystems", "-a", f.rootImage],
            ["inspect", "-a", f.rootImage], ["copy-out", "-a", f.rootImage, "/a.txt", dir.path],
            ["copy-in", "-a", scratch, host, "/"], ["edit", "-a", scratch, "-e", "s/in/out/", "/in.txt"],
        ]
        for command in commands {
            let r = try ImageMountBinary.run([command[0], "-x", "--selinux", "--echo-keys"] + command.dropFirst())
            #expect(r.stderr.contains("trace: add drive 0: "), "\(command): \(r.status) \(r.stderr)")
        }
        #expect(try ImageMountBinary.check(["cat", "-a", scratch, "/in.txt"]) == "out\n")
    }

    /// --format applies to the -a options after it, read from one parse; combined short options
    /// (`-la IMAGE`) no longer lose it; --format alone goes back to probing; a --format after
    /// the last -a is an error.
    @Test func formatByPosition() throws {
        let f = try MountFixture.get()
        let qcow2 = try f.image(f.rootImage, format: "qcow2")
        let probed = try ImageMountBinary.run(["filesystems", "-la", qcow2])
        #expect(probed.status == 0 && probed.text.contains("/dev/sda"), "\(probed.stderr)")
        // Forced raw, the qcow2 file holds no filesystem: the format was applied.
        let forced = try ImageMountBinary.run(["filesystems", "--format=raw", "-la", qcow2])
        #expect(forced.status == 0 && !forced.text.contains("ext4"), "\(forced.text) \(forced.stderr)")
        let mixed = try ImageMountBinary.run(["cat", "--format=qcow2", "-a", qcow2, "--format", "-a", f.bootImage, "-m", "/dev/sdb", "/vmlinuz"])
        #expect(mixed.status == 0 && mixed.text == "kernel\n", "\(mixed.stderr)")
        let wrong = try ImageMountBinary.run(["cat", "--format=qcow2", "-a", qcow2, "-a", f.bootImage, "-m", "/dev/sdb", "/vmlinuz"])
        #expect(wrong.status == 1, "the second -a must be read as qcow2 too")
        let late = try ImageMountBinary.run(["cat", "-a", f.rootImage, "--format=raw", "/a.txt"])
        #expect(late.status == 1 && late.stderr.contains("after the last -a"), "\(late.stderr)")
        let auto = try ImageMountBinary.run(["cat", "--format=auto", "-a", qcow2, "/a.txt"])
        #expect(auto.status == 0 && auto.text == "hello\n", "\(auto.stderr)")
    }

    /// A 4Kn disk (GPT in 4096-byte sectors, made by sgdisk on a 4096-byte loop device).
    @Test func blocksize4096() throws {
        let dir = try TempDir()
        let disk = dir.file("4k.img"), fs = dir.file("fs.img"), src = dir.file("src")
        try Shell.check("""
            set -e
            mkdir \(Shell.quote(src)) && echo four-k > \(Shell.quote(src))/hello
            truncate -s 64M \(Shell.quote(disk)) && mke2fs -q -F -t ext4 -d \(Shell.quote(src)) \(Shell.quote(fs)) 20M
            L=$(losetup -b 4096 -f --show \(Shell.quote(disk)))
            sgdisk -n 1:256:+20M "$L" >/dev/null; rc=$?; losetup -d "$L"; [ $rc = 0 ]
            dd if=\(Shell.quote(fs)) of=\(Shell.quote(disk)) bs=4096 seek=256 conv=notrunc status=none
            """)
        let ok = try ImageMountBinary.run(["cat", "--blocksize=4096", "-a", disk, "-m", "/dev/sda1", "/hello"])
        #expect(ok.status == 0 && ok.text == "four-k\n", "\(ok.stderr)")
        let spaced = try ImageMountBinary.run(["cat", "--blocksize", "4096", "-a", disk, "-m", "/dev/sda1", "/hello"])
        #expect(spaced.status == 0 && spaced.text == "four-k\n", "\(spaced.stderr)")
        // At 512 bytes a sector the GPT is not where it is looked for; --blocksize alone resets.
        #expect(try ImageMountBinary.run(["cat", "-a", disk, "-m", "/dev/sda1", "/hello"]).status == 1)
        #expect(try ImageMountBinary.run(["cat", "--blocksize=4096", "--blocksize", "-a", disk, "-m", "/dev/sda1", "/hello"]).status == 1)
        let bad = try ImageMountBinary.run(["cat", "--blocksize=1024", "-a", disk, "/hello"])
        #expect(bad.status == 1 && bad.stderr.contains("512 or 4096"), "\(bad.stderr)")
        let m = try FuseMount(images: [], arguments: ["--blocksize=4096", "-a", disk, "-m", "/dev/sda1"])
        defer { m.close() }
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/hello"))") == "four-k\n")
    }

    /// --echo-keys: at the terminal prompt the passphrase is echoed (run under script(1), whose
    /// pseudo-terminal shows what the tty echoes); without it, it is not.
    @Test func echoKeys() throws {
        let g = try LUKSFixtures.luksOnLVM()
        func session(_ extra: [String]) throws -> String {
            let command = ([try ImageMountBinary.path(), "cat"] + extra + ["-a", g.image, "/etc/hostname"]).map(Shell.quote).joined(separator: " ")
            return try Shell.check("(sleep 1; printf '%s\\n' \(Shell.quote(LUKSFixtures.passphrase))) | script -qec \(Shell.quote(command)) /dev/null")
        }
        let echoed = try session(["--echo-keys"])
        #expect(echoed.contains(LUKSFixtures.passphrase) && echoed.contains(g.hostname), "\(echoed)")
        let quiet = try session([])
        #expect(!quiet.contains(LUKSFixtures.passphrase) && quiet.contains(g.hostname), "\(quiet)")
    }

    /// guestunmount --fd: the unmount waits until the watched pipe is closed.
    @Test func unmountWaitsForThePipe() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let binary = try ImageMountBinary.path()
        let started = Date()
        let r = try Shell.run("bash -c \(Shell.quote("\(Shell.quote(binary)) unmount -v --fd=3 \(Shell.quote(m.path)) 3< <(sleep 1.5)"))")
        #expect(r.status == 0 && r.stderr.contains("imagemount: trace: unmount "), "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) >= 1.4)
        #expect(!FuseMount.isMounted(m.path))
        let bad = try ImageMountBinary.run(["unmount", "--fd=77", m.path])
        #expect(bad.status == 1 && bad.stderr.contains("--fd=77"), "\(bad.stderr)")
    }

    /// -c/--connect goes to virsh, as libguestfs hands it to libvirt: a stand-in virsh on PATH
    /// records its arguments and prints the domain's XML.
    @Test func connectGoesToVirsh() throws {
        let f = try MountFixture.get()
        let dir = try TempDir()
        let xml = "<domain type='kvm'><name>g1</name><devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            + "<source file='\(f.rootImage)'/><target dev='vda'/></disk></devices></domain>"
        try xml.write(toFile: dir.file("g1.xml"), atomically: false, encoding: .utf8)
        let script = "#!/bin/sh\necho \"$@\" >> \(dir.file("args"))\ncase \"$*\" in *dumpxml*) cat \(dir.file("g1.xml"));; *) echo 'Id Name State';; esac\n"
        try script.write(toFile: dir.file("virsh"), atomically: false, encoding: .utf8)
        try Shell.check("chmod +x \(Shell.quote(dir.file("virsh")))")
        let env = ["PATH": dir.path + ":/usr/sbin:/usr/bin:/sbin:/bin"]
        for spelling in ["-c", "--connect"] {
            let r = try ImageMountBinary.run(["cat", spelling, "qemu:///system", "-d", "g1", "/a.txt"], environment: env)
            #expect(r.status == 0 && r.text == "hello\n", "\(r.stderr)")
        }
        let args = try String(contentsOfFile: dir.file("args"), encoding: .utf8)
        #expect(args.contains("-c qemu:///system dumpxml g1"), "\(args)")
    }

    /// guestunmount's --retry=N and --no-retry on a busy mount (a shell sitting in it).
    @Test func unmountRetries() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage])
        defer { m.close() }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "cd \(Shell.quote(m.path)) && exec sleep 30"]
        holder.standardInput = FileHandle.nullDevice
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer { if holder.isRunning { holder.terminate() }; holder.waitUntilExit() }
        usleep(300_000)
        var started = Date()
        let once = try ImageMountBinary.run(["unmount", "--no-retry", m.path])
        #expect(once.status == 1 && once.stderr.contains("busy"), "\(once.stderr)")
        #expect(Date().timeIntervalSince(started) < 1)
        started = Date()
        let twice = try ImageMountBinary.run(["unmount", "--retry", "2", m.path])
        #expect(twice.status == 1 && Date().timeIntervalSince(started) >= 0.9, "\(twice.stderr)")
        holder.terminate()
        holder.waitUntilExit()
        #expect(try ImageMountBinary.run(["unmount", "--retry=3", m.path]).status == 0)
    }
}
