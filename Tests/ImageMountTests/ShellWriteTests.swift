import Foundation
import Testing
import TestSupport

/// `imagemount shell --rw`: the writing commands, against the kernel doing the same with the
/// coreutils commands guestfsd runs for them (umask 022, as root) on a copy of the same ext4
/// image, e2fsck clean afterwards; the refusals in the daemon's words; and the host transfers
/// inside the sandbox.
@Suite struct ShellWriteTests {
    /// An ext4 image made by mke2fs -d from a small tree: modes, owners, an xattr, a hard-linked
    /// pair, a symlink, a FIFO and a sparse file.
    static func image(in dir: TempDir) throws -> String {
        let src = dir.file("src"), image = dir.file("base.img")
        let script = """
            set -eu
            S=\(Shell.quote(src))/src
            mkdir -p "$S/sub/deep"
            printf 'file content\\n' > "$S/file" && chmod 0644 "$S/file"
            setfattr -n user.origin -v test "$S/file"
            printf '#!/bin/sh\\n' > "$S/exec" && chmod 0755 "$S/exec"
            printf inner > "$S/sub/inner" && chmod 0600 "$S/sub/inner" && chown 1000:1000 "$S/sub/inner"
            chmod 0750 "$S/sub" && chmod 0700 "$S/sub/deep"
            printf deep > "$S/sub/deep/leaf"
            ln -s ../file "$S/sub/link"
            printf linked > "$S/hard1" && ln "$S/hard1" "$S/hard2"
            mkfifo "$S/fifo"
            truncate -s 5M "$S/sparse" && printf end >> "$S/sparse"
            touch -d '2020-02-02 02:02:02.123456789' "$S/file" "$S/sub/inner" "$S/sub/deep" "$S/sub"
            touch -h -d '2019-01-01 01:01:01.5' "$S/sub/link"
            """
        try Shell.check("bash -c \(Shell.quote(script))")
        try Shell.check("truncate -s 64M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -I 256 -d \(Shell.quote(src)) \(Shell.quote(image))")
        return image
    }

    /// Everything but times (CopyInCommandTests.describe): type, mode, owner, size, link count, path, link target; the xattrs.
    static func describe(_ dir: String) throws -> String { try CopyInCommandTests.describe(dir, times: false) }

    static func times(_ dir: String, access: Bool = false) throws -> String {
        try Shell.check("cd \(Shell.quote(dir)) && find . -printf '%p \(access ? "%AY-%Am-%Ad+%AT" : "%TY-%Tm-%Td+%TT")\\n' | LC_ALL=C sort")
    }

    /// guestfish commands, and what guestfsd runs for each (coreutils, attr).
    static let steps: [(fish: String, kernel: String)] = [
        ("write /new.txt \"hello\\n\"", "printf 'hello\\n' > new.txt"),
        ("write-append /new.txt \"world\\n\"", "printf 'world\\n' >> new.txt"),
        ("write-append /appended x", "printf x >> appended"),
        ("touch /empty", "touch empty"),
        ("mkdir /d", "mkdir d"),
        ("mkdir-mode /d/m 0711", "mkdir -m 0711 d/m"),
        ("mkdir-p /p/q/r", "mkdir -p p/q/r"),
        ("mkdir-p /p/q", "mkdir -p p/q"),
        ("cp /src/file /d", "cp src/file d"),
        ("cp /src/file /d/renamed", "cp src/file d/renamed"),
        ("cp /src/sub/link /d/followed", "cp src/sub/link d/followed"),
        ("cp-r /src /copy-r", "cp -rP src copy-r"),
        ("cp-a /src /copy-a", "cp -a src copy-a"),
        ("cp-a /src/sub /p", "cp -a src/sub p"),
        ("touch /src/file", "touch src/file"),
        ("mv /d/renamed /p/q/r", "mv d/renamed p/q/r"),
        ("mv /new.txt /d/moved.txt", "mv new.txt d/moved.txt"),
        ("ln /d/moved.txt /d/hard", "ln d/moved.txt d/hard"),
        ("ln-s ../src/file /d/sym", "ln -s ../src/file d/sym"),
        ("ln-sf /elsewhere /d/sym", "ln -sf /elsewhere d/sym"),
        ("ln-f /appended /d/hard", "ln -f appended d/hard"),
        ("chmod 0640 /d/moved.txt", "chmod 0640 d/moved.txt"),
        ("chmod 0x1ed /d/file", "chmod 0755 d/file"),
        ("chown 1000 100 /d/moved.txt", "chown 1000:100 d/moved.txt"),
        ("chown -1 42 /d/file", "chgrp 42 d/file"),
        ("lchown 7 8 /d/sym", "chown -h 7:8 d/sym"),
        ("setxattr user.a \"value here\" 5 /d/moved.txt", "setfattr -n user.a -v value d/moved.txt"),
        ("setxattr user.b bbb 3 /empty", "setfattr -n user.b -v bbb empty"),
        ("lsetxattr trusted.l on 2 /d/sym", "setfattr -h -n trusted.l -v on d/sym"),
        ("removexattr user.b /empty", "setfattr -x user.b empty"),
        ("truncate-size /appended 100000", "truncate -s 100000 appended"),
        ("truncate /d/followed", "truncate -s 0 d/followed"),
        ("rm-f /nothing", "rm -f nothing"),
        ("rm /copy-r/hard2", "rm copy-r/hard2"),
        ("rm-rf /copy-r/sub", "rm -rf copy-r/sub"),
        ("rm-rf /no/such/thing", "rm -rf no/such/thing"),
        ("rmdir /d/m", "rmdir d/m"),
        ("umask 077", "umask 077"),
        ("mkdir /private", "mkdir private"),
        ("write /private/f p", "printf p > private/f"),
        ("sync", "sync"),
    ]

    @Test func theWritingCommandsLeaveWhatCoreutilsLeavesOnTheKernelsMount() throws {
        let dir = try TempDir("imagemount-shell-write")
        let base = try Self.image(in: dir)
        let ours = dir.file("ours.img"), theirs = dir.file("theirs.img")
        try Shell.check("cp \(Shell.quote(base)) \(Shell.quote(ours)) && cp \(Shell.quote(base)) \(Shell.quote(theirs))")

        let script = Self.steps.map(\.fish).joined(separator: "\n") + "\n"
        let result = try ImageMountBinary.run(["shell", "--rw", "-a", ours], stdin: Data(script.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        // umask prints the old mask, in decimal as guestfish prints an int.
        #expect(result.text == "18\n")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(ours)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")

        let kernel = try KernelMount(image: theirs, writable: true)
        let commands = Self.steps.map(\.kernel).joined(separator: " && ")
        try Shell.check("cd \(Shell.quote(kernel.path)) && umask 022 && \(commands)")
        let expected = try Self.describe(kernel.path)
        let expectedTimes = try Self.times(kernel.path + "/copy-a")
        kernel.close()

        let mounted = try KernelMount(image: ours)
        defer { mounted.close() }
        #expect(try Self.describe(mounted.path) == expected)
        // cp-a keeps the times to the nanosecond, of directories (set after their contents) and
        // symlinks too. (Access times only against our own source: the kernel's reads in the
        // oracle change its own; this read-only mount changes none. /src/file was touched since.)
        #expect(try Self.times(mounted.path + "/copy-a") == expectedTimes)
        let accessed = try Self.times(mounted.path + "/copy-a", access: true), original = try Self.times(mounted.path + "/src", access: true)
        #expect(accessed.split(separator: "\n").filter { !$0.hasPrefix("./file ") } == original.split(separator: "\n").filter { !$0.hasPrefix("./file ") })
        #expect(try Shell.check("cat \(Shell.quote(mounted.path))/d/moved.txt") == "hello\nworld\n")
        // truncate-size leaves a hole; cp-a and cp-r keep the sparse file's.
        for sparse in ["/appended", "/copy-a/sparse", "/copy-r/sparse"] {
            #expect(Int(try Shell.check("stat -c %b \(Shell.quote(mounted.path + sparse))").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 9999 <= 16, "\(sparse)")
        }
        // Hard links: cp-a keeps the pair, cp-r does not.
        #expect(try Shell.check("stat -c %h \(Shell.quote(mounted.path))/copy-a/hard1 \(Shell.quote(mounted.path))/copy-r/hard1") == "2\n1\n")
    }

    /// edit with $EDITOR (guestfish's) and with -e (virt-edit's Perl expression): the file's
    /// owner, mode and xattrs kept, its content what sed and perl make of it on the host.
    @Test func editRunsTheEditorOrAPerlExpressionAndKeepsOwnerModeAndXattrs() throws {
        let dir = try TempDir("imagemount-shell-edit")
        let image = try Self.image(in: dir)
        let script = """
            edit /src/sub/inner
            vi -e "s/^/> /" /src/file
            cat /src/sub/inner
            cat /src/file
            getxattr /src/file user.origin

            """
        let result = try ImageMountBinary.run(["shell", "--rw", "-a", image], environment: ["EDITOR": "sed -i s/inner/edited/"],
                                              stdin: Data(script.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == "edited\n> file content\n\ntest")
        let mounted = try KernelMount(image: image)
        defer { mounted.close() }
        #expect(try Shell.check("stat -c '%a %u %g' \(Shell.quote(mounted.path))/src/sub/inner \(Shell.quote(mounted.path))/src/file") == "600 1000 1000\n644 0 0\n")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        // Read-only: refused before any editor runs.
        let readOnly = try ImageMountBinary.run(["shell", "-a", image, "edit", "-e", "s/a/b/", "/src/file"])
        #expect(readOnly.status == 1)
        #expect(readOnly.stderr.hasPrefix("imagemount: edit: /src/file: Read-only file system"))
    }

    @Test func refusalsAreInTheDaemonsWordsAndTheScriptGoesOnPastMarkedOnes() throws {
        let dir = try TempDir("imagemount-shell-write")
        let image = try Self.image(in: dir)
        let steps: [(String, String)] = [
            ("-mkdir /src", "mkdir: /src: File exists"),
            ("-rm /src", "rm: /src: Is a directory"),
            ("-rm /nothing", "rm: /nothing: No such file or directory"),
            ("-rmdir /src", "rmdir: /src: Directory not empty"),
            ("-rmdir /src/file", "rmdir: /src/file: Not a directory"),
            ("-rm /", "rm: /: Device or resource busy"),
            ("-cp /src /x", "cp: /src: Is a directory (cp-r or cp-a copies directories)"),
            ("-cp-a /src /src/sub/deep", "cp-a: /src: cannot copy a directory into itself (/src/sub/deep/src)"),
            ("-cp-a /src /lnk", "cp-a: /src: cannot copy a directory into itself (/lnk/src)"),
            ("-mv /src /src/sub/deep", "mv: /src/sub/deep: Invalid argument (cannot move a directory into itself)"),
            ("-mv /src /lnk/deep", "mv: /lnk/deep: Invalid argument (cannot move a directory into itself)"),
            ("-mv /nothing /x", "mv: /nothing: No such file or directory"),
            ("-mkdir relative", "mkdir: relative: path must start with a / character"),
            ("-chmod 0999 /src/file", "chmod: 0999: the mode must be an integer (a leading 0 for octal, 0x for hexadecimal)"),
            ("-write /src/file/x y", "write: /src/file/x: Not a directory"),
            ("-write /src y", "write: /src: Is a directory"),
            ("-touch /src/sub", "touch: /src/sub: not a regular file"),
            ("-ln /src/sub /x", "ln: /src/sub: hard link not allowed for directory"),
            ("-ln /src/file /src/exec", "ln: /src/exec: File exists"),
            ("-mkdir-p /src/file/below", "mkdir-p: /src/file: Not a directory"),
            ("-removexattr user.none /src/file", "removexattr: /src/file: No data available"),
            ("-setxattr user.a abc 9 /src/file", "setxattr: 9: vallen must be between 0 and the value's length (3)"),
            ("-umask 01000", "umask: 01000: the mask must be between 0 and 0777"),
        ]
        // /lnk leads into /src: a symlink on the way must not hide that a move or copy is into itself.
        let script = "ln-s /src/sub /lnk\n" + steps.map(\.0).joined(separator: "\n") + "\nls /src/sub/deep\n"
        let result = try ImageMountBinary.run(["shell", "--rw", "-a", image], stdin: Data(script.utf8))
        #expect(result.status == 1)
        let messages = result.stderr.split(separator: "\n").map(String.init)
        for (step, message) in steps {
            #expect(messages.contains("imagemount: \(message)"), "\(step): \(result.stderr)")
        }
        // Nothing was left behind by the refused copy.
        #expect(result.text == "leaf\n")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    @Test func withoutRwOrUnderMountRoNothingIsWritten() throws {
        let dir = try TempDir("imagemount-shell-write")
        let image = try Self.image(in: dir)
        let before = try Shell.check("sha256sum < \(Shell.quote(image))")
        let readOnly = try ImageMountBinary.run(["shell", "-a", image, "mkdir", "/x", ":", "cat", "/src/file"])
        #expect(readOnly.status == 1)
        #expect(readOnly.stderr == "imagemount: mkdir: /x: Read-only file system (the shell opened the images read-only: give --rw to write)\n")
        #expect(try Shell.check("sha256sum < \(Shell.quote(image))") == before)

        // In a --rw shell, mount-ro's filesystem refuses writes; written data survives umount
        // and mount again (the filesystem closed and reopened, never open twice).
        let script = """
            umount-all
            mount-ro /dev/sda /
            -write /f x
            statvfs /
            umount /
            mount /dev/sda /
            write /f written
            umount /
            mount-ro /dev/sda /
            cat /f

            """
        let result = try ImageMountBinary.run(["shell", "--rw", "-a", image], stdin: Data(script.utf8))
        #expect(result.status == 1)
        #expect(result.stderr == "imagemount: write: /f: Read-only file system\n")
        #expect(result.text.contains("flag: 1\n"))
        #expect(result.text.hasSuffix("written\n"))
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    /// upload, copy-in, copy-out, tar-in, tar-out and download, sandboxed: each reaches the host
    /// paths its own line names.
    @Test func hostTransfersReachThePathsTheirLinesName() throws {
        let dir = try TempDir("imagemount-shell-host")
        let image = try Self.image(in: dir)
        let host = dir.file("host")
        try Shell.check("""
            mkdir -p \(host)/tree/sub \(host)/out && head -c 300000 /dev/urandom > \(host)/in.bin && \
            printf one > \(host)/tree/one && printf two > \(host)/tree/sub/two && chmod 0751 \(host)/tree/sub && \
            ln -s one \(host)/tree/link && setfattr -n user.t -v v \(host)/tree/one
            """)
        let script = """
            upload \(host)/in.bin /up.bin
            copy-in \(host)/tree /
            copy-out /tree /src \(host)/out
            tar-out /tree \(host)/t.tgz compress:gzip xattrs:true
            mkdir /untarred
            tar-in \(host)/t.tgz /untarred compress:gzip xattrs:true
            download /up.bin \(host)/dl.bin
            checksum sha256 /up.bin

            """
        let result = try ImageMountBinary.run(["shell", "--rw", "-a", image], environment: ["IMAGEMOUNT_SANDBOX": "required"],
                                              stdin: Data(script.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == (try Shell.check("sha256sum < \(host)/in.bin | cut -d' ' -f1")))
        try Shell.check("cmp \(host)/in.bin \(host)/dl.bin")
        #expect(try Self.describe(host + "/out/tree") == (try Self.describe(host + "/tree")))
        try Shell.check("diff -r \(host)/out/src/sub \(Shell.quote(dir.file("src/src/sub")))")
        #expect(try Shell.check("tar tzf \(host)/t.tgz | LC_ALL=C sort") == "./\n./link\n./one\n./sub/\n./sub/two\n")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        let mounted = try KernelMount(image: image)
        defer { mounted.close() }
        #expect(try Self.describe(mounted.path + "/tree") == (try Self.describe(host + "/tree")))
        #expect(try Self.describe(mounted.path + "/untarred") == (try Self.describe(host + "/tree")))
        try Shell.check("cmp \(host)/in.bin \(Shell.quote(mounted.path))/up.bin")
    }
}

/// df and df-h: coreutils' table for the kernel's mount of the same filesystem, but for the
/// device's name and the appliance's /sysroot.
@Suite struct ShellDfTests {
    @Test(arguments: [false, true])
    func dfIsWhatCoreutilsPrintsForTheKernelsMount(human: Bool) throws {
        let dir = try TempDir("imagemount-shell-df")
        let image = try ShellWriteTests.image(in: dir)
        // Some use, so that Used and Use% are not all journal.
        try Shell.check("head -c 3000000 /dev/urandom > \(Shell.quote(dir.file("blob")))")
        try ImageMountBinary.check(["copy-in", "-a", image, dir.file("blob"), "/"])
        let ours = try ImageMountBinary.run(["shell", "-a", image, human ? "df-h" : "df"])
        #expect(ours.status == 0, "\(ours.stderr)")
        let mounted = try KernelMount(image: image)
        defer { mounted.close() }
        #expect(ours.text == (try Self.kernelTable(mounted.path, human: human)) + "\n")
    }

    /// coreutils' df (or df -h) table for the kernel's mount at `path`, as the appliance would
    /// show /dev/sda on /sysroot. The first column is as wide as its longest cell and at least
    /// 14 (df.c's field_data; the kernel's loop device's name may be longer); past it, every
    /// column is the kernel's own.
    static func kernelTable(_ path: String, human: Bool) throws -> String {
        let kernel = try Shell.check("df \(human ? "-h " : "")\(Shell.quote(path))").split(separator: "\n").map(String.init)
        let width = max(14, kernel[1].prefix { $0 != " " }.count)
        let rest = kernel.map { String($0.dropFirst(width + 1)) }
        return "Filesystem".padding(toLength: 14, withPad: " ", startingAt: 0) + " " + rest[0] + "\n"
            + "/dev/sda".padding(toLength: 14, withPad: " ", startingAt: 0) + " "
            + rest[1].replacingOccurrences(of: path, with: "/sysroot") + "\n"
    }
}
