import Foundation
import Testing
import TestSupport
import GuestFS
import GuestFSInspect
@testable import ImageMount

/// `imagemount shell`: guestfish's quoting and output shapes on an inspected guest (GPT: root,
/// /boot by UUID, /data by LABEL), against what the guest was built from and the host's tools.
@Suite struct ShellCommandTests {
    // MARK: guestfish's words (guestfish(1), QUOTING)

    @Test func wordsAreSplitAndQuotedAsGuestfishDoes() throws {
        #expect(try ShellWords.parse("  cat   /etc/hostname ") == ShellLine(command: "cat", arguments: ["/etc/hostname"]))
        #expect(try ShellWords.parse("echo \"a b\" 'c \\n d' \"tab\\there\" \"\\x41\\101\\\\\\\"\"")
            == ShellLine(command: "echo", arguments: ["a b", "c \\n d", "tab\there", "AA\\\""]))
        #expect(try ShellWords.parse("-cat /nope") == ShellLine(command: "cat", arguments: ["/nope"], ignoreErrors: true))
        #expect(try ShellWords.parse("echo a\"b") == ShellLine(command: "echo", arguments: ["a\"b"]))
        #expect(try ShellWords.parse("# a comment") == nil)
        #expect(try ShellWords.parse("   ") == nil)
        #expect(throws: ShellWords.SyntaxError.self) { try ShellWords.parse("echo \"unterminated") }
        #expect(throws: ShellWords.SyntaxError.self) { try ShellWords.parse("echo 'unterminated") }
        #expect(throws: ShellWords.SyntaxError.self) { try ShellWords.parse("echo \"a\"b") }
        #expect(throws: ShellWords.SyntaxError.self) { try ShellWords.parse("!ls /") }
        #expect(throws: ShellWords.SyntaxError.self) { try ShellWords.parse("cat /etc/passwd | wc -l") }
        #expect(throws: ShellWords.SyntaxError.self) { try ShellWords.parse("echo \"\\400\"") }
        #expect(ShellWords.fromArguments(["cat", "/a", ":", "-ls", "/", ":", ":"])
            == [ShellLine(command: "cat", arguments: ["/a"]), ShellLine(command: "ls", arguments: ["/"], ignoreErrors: true)])
    }

    // MARK: Scripts on an inspected guest

    static let script = """
        # what a guestfish <<EOF script asks
        inspect-os
        inspect-get-type /dev/sda1
        inspect-get-distro /dev/sda1
        inspect-get-major-version /dev/sda1
        inspect-get-hostname /dev/sda1
        inspect-get-mountpoints /dev/sda1
        list-devices
        list-partitions
        list-filesystems
        cat /etc/hostname
        ls /etc
        ls /boot
        exists /data/payload
        exists /data/nothing
        is-file /etc/hostname
        is-dir /etc/hostname
        is-dir /boot
        is-symlink /etc
        filesize /data/payload
        head-n 2 /etc/os-release
        tail-n 1 /etc/os-release
        echo "done:\\tall"

        """

    static let expected = """
        /dev/sda1
        linux
        fedora
        39
        gpt-guest
        /: /dev/sda1
        /boot: /dev/sda2
        /data: /dev/sda3
        /dev/sda
        /dev/sda1
        /dev/sda2
        /dev/sda3
        /dev/sda1: ext4
        /dev/sda2: ext4
        /dev/sda3: ext4
        gpt-guest

        fstab
        hostname
        hosts
        os-release
        lost+found
        vmlinuz
        true
        false
        true
        false
        true
        false
        15
        NAME=Fedora
        ID=fedora
        PRETTY_NAME="Fedora Linux 39 (Server Edition)"
        done:\tall

        """

    @Test func aScriptOnStandardInputPrintsWhatGuestfishPrints() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let result = try ImageMountBinary.run(["shell", "--ro", "-a", guest.image, "-i"], stdin: Data(Self.script.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == Self.expected)
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test func theSameScriptFromAFileAndFromTheArguments() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let file = NSTemporaryDirectory() + "imagemount-shell-\(getpid()).fish"
        try Data(Self.script.utf8).write(to: URL(fileURLWithPath: file))
        defer { unlink(file) }
        let fromFile = try ImageMountBinary.run(["shell", "-a", guest.image, "-i", "-f", file])
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        #expect(fromFile.text == Self.expected)

        let words = try Self.script.split(separator: "\n").compactMap { try ShellWords.parse(String($0)) }
            .flatMap { [":", $0.command] + $0.arguments }.dropFirst()
        let fromArguments = try ImageMountBinary.run(["shell", "-a", guest.image, "-i"] + words)
        #expect(fromArguments.status == 0, "\(fromArguments.stderr)")
        #expect(fromArguments.text == Self.expected)
    }

    @Test func aFailingCommandStopsTheScriptUnlessItIsMarked() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let stopped = try ImageMountBinary.run(["shell", "-a", guest.image, "-i"],
                                               stdin: Data("echo one\ncat /etc/nothing\necho two\n".utf8))
        #expect(stopped.status == 1)
        #expect(stopped.text == "one\n")
        #expect(stopped.stderr == "imagemount: cat: /etc/nothing: No such file or directory\n")

        let carried = try ImageMountBinary.run(["shell", "-a", guest.image, "-i"],
                                               stdin: Data("-cat /etc/nothing\necho two\n".utf8))
        #expect(carried.status == 1)
        #expect(carried.text == "two\n")

        for (line, message) in [
            ("cat etc/hostname", "cat: etc/hostname: path must start with a / character"),
            ("cat /etc", "cat: /etc: Is a directory"),
            ("ls /etc/hostname", "ls: /etc/hostname: Not a directory"),
            ("frobnicate /", "frobnicate: unknown command, use 'help' to list them"),
            ("cat", "cat: wrong number of arguments (0); usage: cat path"),
            ("inspect-get-distro /dev/sda2", "inspect-get-distro: /dev/sda2: no inspection data: call inspect-os first, or the device is not a root"),
            ("echo \"open", "line 1: unterminated double quote"),
        ] {
            let result = try ImageMountBinary.run(["shell", "-a", guest.image, "-i"], stdin: Data((line + "\n").utf8))
            #expect(result.status == 1, "\(line)")
            #expect(result.stderr == "imagemount: \(message)\n", "\(line)")
        }
    }

    @Test func checksumsAndStatAgreeWithTheHostTools() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let result = try ImageMountBinary.run(["shell", "-a", guest.image, "-i",
                                               "checksum", "md5", "/etc/os-release", ":", "checksum", "sha256", "/etc/os-release",
                                               ":", "checksum", "crc", "/etc/os-release", ":", "statns", "/etc/os-release",
                                               ":", "download", "/etc/os-release", "-"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let content = "NAME=Fedora\nID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39 (Server Edition)\"\n"
        let file = NSTemporaryDirectory() + "imagemount-shell-sum-\(getpid())"
        try Data(content.utf8).write(to: URL(fileURLWithPath: file))
        defer { unlink(file) }
        #expect(lines[0] == (try Shell.check("md5sum \(file) | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(lines[1] == (try Shell.check("sha256sum \(file) | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(lines[2] == (try Shell.check("cksum \(file) | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)))
        // statns against debugfs's view of the same inode.
        let debugfs = try Shell.check("debugfs -R 'stat /etc/os-release' '\(guest.image)?offset=\(2048 * 512)' 2>/dev/null")
        let inode = try #require(debugfs.firstMatch(of: #/Inode: ([0-9]+)/#)?.1)
        let stat = Dictionary(uniqueKeysWithValues: lines[3..<25].map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return (parts[0], parts.count > 1 ? parts[1] : "")
        })
        #expect(stat["st_ino"] == String(inode))
        #expect(stat["st_size"] == String(content.utf8.count))
        #expect(stat["st_mode"] == String(0o100644))
        #expect(stat["st_nlink"] == "1")
        #expect(lines[25...].joined(separator: "\n") == content)
    }

    @Test func findListsEveryNameSortedAsTheHostsFindDoes() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let result = try ImageMountBinary.run(["shell", "-a", image, "find", "/data"])
        #expect(result.status == 0, "\(result.stderr)")
        let host = try Shell.check("cd \(Shell.quote(Fixtures.tree.root))/data && find . -mindepth 1 | sed 's|^\\./||' | LC_ALL=C sort")
        #expect(result.text == host)
    }

    /// On a terminal (script(1) gives it one): the prompt, a failing command reported and the
    /// session going on, quit ending it before the lines after it.
    @Test func theInteractivePromptGoesOnAfterAFailureAndStopsAtQuit() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let command = try "\(ImageMountBinary.path()) shell -a \(guest.image) -i"
        let home = try TempDir("imagemount-shell-home")
        let result = try Shell.run("script -qec \(Shell.quote(command)) /dev/null",
                                   stdin: Data("cat /etc/hostname\ncat /nope\nls /boot\nquit\nls /\n".utf8),
                                   environment: ["HOME": home.path, "TERM": "xterm", "PATH": "/usr/bin:/bin"])
        let text = String(decoding: result.stdout, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        // libedit shows each line after the prompt as it edits it.
        #expect(text.contains("><fs> cat /etc/hostname\ngpt-guest\n\n><fs> cat /nope\nimagemount: cat: /nope: No such file or directory\n><fs> ls /boot\nlost+found\nvmlinuz\n><fs> quit\n"), "\(text)")
        // The terminal echoes what was typed; after quit nothing ran, so /'s names are absent.
        #expect(!text.contains("\nbin\n") && !text.contains("\nboot\n"))
        #expect(text.components(separatedBy: "><fs> ").count == 5)
    }

    /// With libedit on the terminal: Tab completes a command name and a guest path, Ctrl-P brings
    /// back the line before, and the lines are kept in ~/.imagemount_shell_history.
    @Test func thePromptCompletesCommandsAndPathsAndKeepsAHistory() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let home = try TempDir("imagemount-shell-home")
        let command = try "\(ImageMountBinary.path()) shell -a \(guest.image) -i"
        let result = try Shell.run("script -qec \(Shell.quote(command)) /dev/null",
                                   stdin: Data("ech\t completed\ncat /etc/hostn\t\n\u{10}\nquit\n".utf8),
                                   environment: ["HOME": home.path, "TERM": "xterm", "PATH": "/usr/bin:/bin"])
        let text = String(decoding: result.stdout, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        #expect(text.contains("completed\n"), "\(text)")
        #expect(text.components(separatedBy: "gpt-guest\n\n").count == 3, "\(text)")
        #expect(try String(contentsOfFile: home.file(".imagemount_shell_history"), encoding: .utf8)
            == "echo completed\ncat /etc/hostname\ncat /etc/hostname\nquit\n")
        #expect(ShellLineEditor.completions("/etc/ho", line: "cat /etc/ho", point: 11, context: try Self.context(guest)) == ["/etc/hostname", "/etc/hosts"])
        #expect(ShellLineEditor.completions("mk", line: "mk", point: 2, context: try Self.context(guest)) == ["mkdir", "mkdir-mode", "mkdir-p"])
        #expect(ShellLineEditor.completions("/bo", line: "ls /bo", point: 6, context: try Self.context(guest)) == ["/boot/"])
    }

    static func context(_ guest: GuestFixtures.Guest) throws -> ShellContext {
        let g = try GuestFS.Guest(drives: [DriveSpec(path: guest.image)], writable: false)
        let tree = try MountTree(mounting: Inspector.mountPlan(for: Inspector.inspect(g, registry: false)[0], in: g), writable: false)
        return ShellContext(guest: g, tree: tree, writable: false)
    }

    @Test func downloadWritesHostFilesInTheDirectoriesTheScriptNames() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let dir = NSTemporaryDirectory() + "imagemount-shell-dl-\(getpid())"
        try Shell.check("rm -rf \(dir) && mkdir -p \(dir)")
        defer { _ = try? Shell.check("rm -rf \(dir)") }
        let result = try ImageMountBinary.run(["shell", "-a", guest.image, "-i"],
                                              environment: ["IMAGEMOUNT_SANDBOX": "required"],
                                              stdin: Data("download /etc/os-release \(dir)/os-release\ndownload /data/payload \(dir)/missing/x\n".utf8))
        #expect(result.status == 1)
        #expect(try String(contentsOfFile: dir + "/os-release", encoding: .utf8)
            == "NAME=Fedora\nID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39 (Server Edition)\"\n")
        #expect(result.stderr == "imagemount: download: \(dir)/missing/x: No such file or directory\n")
    }

    /// guestfs_ll is `ls -la` in the appliance: the same as the host's ls in the C locale on
    /// the kernel's mount of the same filesystem (everything in the guest's /etc is root's).
    @Test func llIsWhatLsLaPrintsOnTheKernelsMount() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let result = try ImageMountBinary.run(["shell", "-a", guest.image, "-i", "ll", "/etc", ":", "ll", "/etc/hostname"])
        #expect(result.status == 0, "\(result.stderr)")
        let mnt = NSTemporaryDirectory() + "imagemount-shell-ll-\(getpid())"
        try Shell.check("mkdir -p \(mnt) && mount -o ro,loop,offset=\(2048 * 512),sizelimit=\(100 << 20) \(Shell.quote(guest.image)) \(mnt)")
        defer { _ = try? Shell.check("umount \(mnt); rmdir \(mnt)") }
        let kernel = try Shell.check("cd \(mnt) && LC_ALL=C ls -la etc && LC_ALL=C ls -la etc/hostname")
        // ls names the file as given; the shell's path is /etc/hostname.
        #expect(result.text == kernel.replacingOccurrences(of: " etc/hostname\n", with: " /etc/hostname\n"))
    }

    /// Devices, statvfs and du against the kernel's view of the same filesystems.
    @Test func devicesStatvfsAndDuAgreeWithTheKernel() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let result = try ImageMountBinary.run(["shell", "-a", guest.image, "-i",
                                               "vfs-type", "/dev/sda3", ":", "vfs-label", "/dev/sda3", ":", "vfs-uuid", "/dev/sda2",
                                               ":", "blockdev-getsize64", "/dev/sda2", ":", "inspect-get-filesystems", "/dev/sda1",
                                               ":", "statvfs", "/", ":", "du", "/etc"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.text.split(separator: "\n").map(String.init)
        #expect(Array(lines[0..<7]) == ["ext4", "DATA", GuestFixtures.bootUUID, String(40 << 20), "/dev/sda1", "/dev/sda2", "/dev/sda3"])
        let fields = Dictionary(uniqueKeysWithValues: lines[7..<18].map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return (parts[0], parts[1])
        })
        let mnt = NSTemporaryDirectory() + "imagemount-shell-vfs-\(getpid())"
        try Shell.check("mkdir -p \(mnt) && mount -o ro,loop,offset=\(2048 * 512),sizelimit=\(100 << 20) \(Shell.quote(guest.image)) \(mnt)")
        defer { _ = try? Shell.check("umount \(mnt); rmdir \(mnt)") }
        let kernel = try Shell.check("stat -f -c '%S %b %f %a %c %d %l' \(mnt)").split(separator: " ").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect([fields["bsize"], fields["blocks"], fields["bfree"], fields["bavail"], fields["files"], fields["ffree"], fields["namemax"]]
            == kernel.map { Optional($0) })
        #expect(lines[18] == (try Shell.check("du -s \(mnt)/etc | cut -f1").trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    @Test func xattrsArePrintedAsGuestfishPrintsAStructList() throws {
        let dir = NSTemporaryDirectory() + "imagemount-shell-xattr-\(getpid())"
        try Shell.check("""
            rm -rf \(dir) && mkdir -p \(dir)/src && echo x > \(dir)/src/f && \
            setfattr -n user.text -v hello \(dir)/src/f && setfattr -n user.bin -v 0x6100ff \(dir)/src/f && \
            truncate -s 16M \(dir)/fs.img && mke2fs -q -F -t ext4 -d \(dir)/src \(dir)/fs.img
            """)
        defer { _ = try? Shell.check("rm -rf \(dir)") }
        let result = try ImageMountBinary.run(["shell", "-a", dir + "/fs.img", "getxattrs", "/f", ":", "getxattr", "/f", "user.text"])
        #expect(result.status == 0, "\(result.stderr)")
        // The order is the filesystem's (ext4's in-inode order), as guestfish's listxattr gives it.
        let entries = result.text.components(separatedBy: "}\n")
        #expect(entries.contains("[0] = {\n  attrname: user.bin\n  attrval: a\\x00\\xff\n") || entries.contains("[1] = {\n  attrname: user.bin\n  attrval: a\\x00\\xff\n"))
        #expect(entries.contains("[0] = {\n  attrname: user.text\n  attrval: hello\n") || entries.contains("[1] = {\n  attrname: user.text\n  attrval: hello\n"))
        #expect(result.text.hasSuffix("}\nhello"))
    }

    @Test func lvmVolumesGroupsAndPhysicalVolumes() throws {
        let centos = try LVMFixtures.centos()
        let result = try ImageMountBinary.run(["shell", "-a", centos.disks[0], "-a", centos.disks[1], "lvs", ":", "vgs", ":", "pvs"])
        #expect(result.status == 0, "\(result.stderr)")
        let lvs = centos.volumes.map { "/dev/centos/\($0.name)" }.sorted()
        #expect(result.text == (lvs + ["centos", "/dev/sda2", "/dev/sdb"]).joined(separator: "\n") + "\n")
    }

    @Test func aScriptMountsAndUnmountsAsGuestfishScriptsDo() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let script = """
            run
            mount /dev/sda1 /
            mount-ro /dev/sda2 /boot
            mounts
            mountpoints
            ls /boot
            -umount /
            umount /boot
            mounts
            exists /boot/vmlinuz
            umount-all
            mount LABEL=DATA /
            cat /payload

            """
        let result = try ImageMountBinary.run(["shell", "-a", guest.image], stdin: Data(script.utf8))
        #expect(result.text == """
            /dev/sda1
            /dev/sda2
            /dev/sda1: /
            /dev/sda2: /boot
            lost+found
            vmlinuz
            /dev/sda1
            false
            data partition


            """)
        #expect(result.stderr == "imagemount: umount: /: Device or resource busy\n")
        #expect(result.status == 1)
        for (line, message) in [
            ("mount /dev/sda2 /boot", "mount: /boot: No such file or directory (mount / first)"),
            ("mount /dev/sda1 /\nmount /dev/sda2 /nothing", "mount: /nothing: No such file or directory"),
            ("mount /dev/sda1 /\nmount /dev/sda2 /", "mount: /: Device or resource busy"),
            ("umount /x", "umount: /x: not mounted"),
            ("mount /dev/sdz1 /", "mount: device /dev/sdz1: no such device"),
        ] {
            let failed = try ImageMountBinary.run(["shell", "-a", guest.image], stdin: Data((line + "\n").utf8))
            #expect(failed.status == 1, "\(line)")
            #expect(failed.stderr.hasPrefix("imagemount: \(message)"), "\(line): \(failed.stderr)")
        }
    }

    @Test func nothingIsMountedWithoutInspectionOnAMultiFilesystemDisk() throws {
        let guest = try GuestFixtures.gptWithBootAndData()
        let result = try ImageMountBinary.run(["shell", "-a", guest.image, "list-filesystems", ":", "cat", "/etc/hostname"])
        #expect(result.status == 1)
        #expect(result.text == "/dev/sda1: ext4\n/dev/sda2: ext4\n/dev/sda3: ext4\n")
        #expect(result.stderr == "imagemount: cat: no filesystem is mounted (use -i, or -m DEVICE)\n")
        let rw = try ImageMountBinary.run(["shell", "--rw", "-a", guest.image, "-i", "echo", "x"])
        #expect(rw.status == 0, "\(rw.stderr)")
        #expect(rw.text == "x\n")
    }
}
