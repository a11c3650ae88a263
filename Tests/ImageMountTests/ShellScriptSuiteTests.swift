import Foundation
import Testing
import TestSupport
@testable import ImageMount

/// guestfish scripts, as they would be written for `guestfish --ro -a x -i` and
/// `guestfish --rw -a x -i`, run through `imagemount shell` and compared with recorded outputs
/// derived from guestfish(1) and guestfs(3): each command's result printed as guestfish prints
/// its return type (a string and a newline, lists a line an item, bools true/false, ints in
/// decimal, hashes and structs "key: value"). Figures that depend on the host's mke2fs (free
/// blocks, inode numbers) are filled in from the kernel's view of the same image. Together the
/// scripts run every command issue 19 lists; a test checks that they do.
@Suite struct ShellScriptSuiteTests {
    /// A Debian guest on a bare ext4 filesystem (/dev/sda), made deterministic where mke2fs
    /// allows (fixed UUID, label, hash seed and time).
    static func guest(in dir: TempDir) throws -> String {
        let src = dir.file("root"), image = dir.file("guest.img")
        let script = """
            set -eu
            S=\(Shell.quote(src))
            mkdir -p "$S/etc" "$S/bin" "$S/data/sub" "$S/var/lib/dpkg" "$S/empty"
            printf 'suite-guest\\n' > "$S/etc/hostname"
            printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\\nNAME="Debian GNU/Linux"\\nVERSION_ID="12"\\nID=debian\\n' > "$S/etc/os-release"
            printf '/dev/sda / ext4 defaults 0 1\\n' > "$S/etc/fstab"
            printf 'Package: hello\\nStatus: install ok installed\\nVersion: 2.10-3\\nArchitecture: amd64\\n\\n' > "$S/var/lib/dpkg/status"
            printf 'one\\ntwo\\nthree\\nfour\\n' > "$S/data/lines"
            ln -s lines "$S/data/link"
            printf x > "$S/data/sub/f"
            setfattr -n user.k -v val "$S/data/lines"
            touch -d '@1623758400.25' "$S/data/lines"
            touch -h -d '@1600000000' "$S/data/link"
            """
        try Shell.check("bash -c \(Shell.quote(script))")
        try Shell.check("""
            truncate -s 32M \(Shell.quote(image)) && E2FSPROGS_FAKE_TIME=1600000000 mke2fs -q -F -t ext4 -I 256 -L SUITE \
            -U 0b1a2c3d-4e5f-4061-8273-948596a7b8c9 -E hash_seed=11111111-2222-4333-8444-555555555555 \
            -d \(Shell.quote(src)) \(Shell.quote(image))
            """)
        return image
    }

    static let readScript = """
        inspect-os
        inspect-get-roots
        inspect-get-type /dev/sda
        inspect-get-distro /dev/sda
        inspect-get-major-version /dev/sda
        inspect-get-minor-version /dev/sda
        inspect-get-product-name /dev/sda
        inspect-get-hostname /dev/sda
        inspect-get-package-format /dev/sda
        inspect-get-package-management /dev/sda
        inspect-get-mountpoints /dev/sda
        inspect-get-filesystems /dev/sda
        list-devices
        list-partitions
        list-filesystems
        lvs
        vgs
        pvs
        mounts
        mountpoints
        vfs-type /dev/sda
        vfs-label /dev/sda
        vfs-uuid /dev/sda
        ls /data
        find /data
        find0 /data -
        echo
        cat /etc/hostname
        head /data/lines
        head-n 2 /data/lines
        tail-n 1 /data/lines
        tail /data/lines
        download /etc/hostname -
        checksum md5 /etc/hostname
        exists /data/link
        exists /data/none
        is-file /data/link
        is-symlink /data/link
        is-dir /data/sub
        readlink /data/link
        filesize /data/lines
        getxattrs /data/lines
        lstatns /data/link
        lstat /data/link
        stat /data/lines
        statvfs /
        du /data
        df-h
        echo "done"

        """

    /// What guestfish prints for readScript, with the mke2fs- and kernel-dependent figures
    /// (inode numbers, block counts, ctime) as ${...}, filled in by `fill`.
    static let readExpected = """
        /dev/sda
        /dev/sda
        linux
        debian
        12
        0
        Debian GNU/Linux 12 (bookworm)
        suite-guest
        deb
        apt
        /: /dev/sda
        /dev/sda
        /dev/sda
        /dev/sda: ext4
        /dev/sda
        /dev/sda: /
        ext4
        SUITE
        0b1a2c3d-4e5f-4061-8273-948596a7b8c9
        lines
        link
        sub
        lines
        link
        sub
        sub/f
        lines\0link\0sub\0sub/f\0
        suite-guest

        one
        two
        three
        four
        one
        two
        four
        one
        two
        three
        four
        suite-guest
        972fb00ac3e95af1714f14989734d016
        true
        false
        false
        true
        true
        lines
        19
        [0] = {
          attrname: user.k
          attrval: val
        }
        st_dev: 0
        st_ino: ${ino /data/link}
        st_mode: 41471
        st_nlink: 1
        st_uid: 0
        st_gid: 0
        st_rdev: 0
        st_size: 5
        st_blksize: 4096
        st_blocks: 0
        st_atime_sec: ${atime /data/link}
        st_atime_nsec: ${atime_nsec /data/link}
        st_mtime_sec: 1600000000
        st_mtime_nsec: 0
        st_ctime_sec: ${ctime /data/link}
        st_ctime_nsec: ${ctime_nsec /data/link}
        st_spare1: 0
        st_spare2: 0
        st_spare3: 0
        st_spare4: 0
        st_spare5: 0
        st_spare6: 0
        dev: 0
        ino: ${ino /data/link}
        mode: 41471
        nlink: 1
        uid: 0
        gid: 0
        rdev: 0
        size: 5
        blksize: 4096
        blocks: 0
        atime: ${atime /data/link}
        mtime: 1600000000
        ctime: ${ctime /data/link}
        dev: 0
        ino: ${ino /data/lines}
        mode: 33188
        nlink: 1
        uid: 0
        gid: 0
        rdev: 0
        size: 19
        blksize: 4096
        blocks: 2
        atime: ${atime /data/lines}
        mtime: 1623758400
        ctime: ${ctime /data/lines}
        bsize: 1024
        frsize: 1024
        blocks: ${statfs %b}
        bfree: ${statfs %f}
        bavail: ${statfs %a}
        files: ${statfs %c}
        ffree: ${statfs %d}
        favail: ${statfs %d}
        fsid: 0
        flag: 1
        namemax: 255
        ${du /data}
        ${df}
        done

        """

    /// The writing half: each change read back with the reading commands.
    static let writeScript = """
        mkdir /w
        mkdir-p /w/a/b
        mkdir-mode /w/m 0700
        write /w/f "first\\n"
        write-append /w/f "second\\n"
        cat /w/f
        touch /w/t
        filesize /w/t
        cp /w/f /w/a
        cp-a /data /w/data-a
        cp-r /data /w/data-r
        ls /w/data-a
        mv /w/a/f /w/a/b/moved
        find /w/a
        ln-s f /w/sym
        readlink /w/sym
        ln-sf t /w/sym
        readlink /w/sym
        lchown 5 5 /w/sym
        lstatns /w/sym
        ln /w/f /w/hard
        chmod 0600 /w/f
        chown 1000 1000 /w/f
        setxattr user.x "one two" 3 /w/f
        getxattrs /w/f
        removexattr user.x /w/f
        getxattrs /w/f
        stat /w/hard
        truncate-size /w/t 12345
        filesize /w/t
        truncate /w/t
        filesize /w/t
        rm /w/a/b/moved
        rm-f /w/none
        rmdir /w/m
        rm-rf /w/data-r
        umask 077
        mkdir /w/private
        stat /w/private
        write /w/e "first\\nsecond\\n"
        edit -e "s/first/FIRST/" /w/e
        cat /w/e
        sync
        umount /
        mount-ro /dev/sda /
        -mkdir /w/not
        umount-all
        mount /dev/sda /
        ls /w
        help write

        """

    static let writeExpected = """
        first
        second

        0
        lines
        link
        sub
        b
        b/moved
        f
        t
        st_dev: 0
        st_ino: ${ino /w/sym}
        st_mode: 41471
        st_nlink: 1
        st_uid: 5
        st_gid: 5
        st_rdev: 0
        st_size: 1
        st_blksize: 4096
        st_blocks: 0
        st_atime_sec: ${atime /w/sym}
        st_atime_nsec: ${atime_nsec /w/sym}
        st_mtime_sec: ${mtime /w/sym}
        st_mtime_nsec: ${mtime_nsec /w/sym}
        st_ctime_sec: ${ctime /w/sym}
        st_ctime_nsec: ${ctime_nsec /w/sym}
        st_spare1: 0
        st_spare2: 0
        st_spare3: 0
        st_spare4: 0
        st_spare5: 0
        st_spare6: 0
        [0] = {
          attrname: user.x
          attrval: one
        }
        dev: 0
        ino: ${ino /w/f}
        mode: 33152
        nlink: 2
        uid: 1000
        gid: 1000
        rdev: 0
        size: 13
        blksize: 4096
        blocks: 2
        atime: ${atime /w/f}
        mtime: ${mtime /w/f}
        ctime: ${ctime /w/f}
        12345
        0
        18
        dev: 0
        ino: ${ino /w/private}
        mode: 16832
        nlink: 2
        uid: 0
        gid: 0
        rdev: 0
        size: 1024
        blksize: 4096
        blocks: 2
        atime: ${atime /w/private}
        mtime: ${mtime /w/private}
        ctime: ${ctime /w/private}
        FIRST
        second

        a
        data-a
        e
        f
        hard
        private
        sym
        t
        write path content

          create a file, or replace its content, with the string given

        """

    /// The ${...} figures, from the kernel's read-only mount of the image as it is now.
    static func fill(_ template: String, image: String) throws -> String {
        let k = try KernelMount(image: image)
        defer { k.close() }
        var text = template
        while let open = text.range(of: "${"), let close = text.range(of: "}", range: open.upperBound..<text.endIndex) {
            let key = String(text[open.upperBound..<close.lowerBound])
            let parts = key.split(separator: " ", maxSplits: 1).map(String.init)
            let path = parts.count > 1 ? k.path + parts[1] : k.path
            let value: String
            switch parts[0] {
            case "ino": value = try Shell.check("stat -c %i \(Shell.quote(path))")
            case "atime": value = try Shell.check("stat -c %X \(Shell.quote(path))")
            case "mtime": value = try Shell.check("stat -c %Y \(Shell.quote(path))")
            case "ctime": value = try Shell.check("stat -c %Z \(Shell.quote(path))")
            case "atime_nsec": value = try Shell.check("stat -c %x \(Shell.quote(path)) | sed 's/.*\\.\\([0-9]*\\) .*/\\1/' | sed 's/^0*\\([0-9]\\)/\\1/'")
            case "mtime_nsec": value = try Shell.check("stat -c %y \(Shell.quote(path)) | sed 's/.*\\.\\([0-9]*\\) .*/\\1/' | sed 's/^0*\\([0-9]\\)/\\1/'")
            case "ctime_nsec": value = try Shell.check("stat -c %z \(Shell.quote(path)) | sed 's/.*\\.\\([0-9]*\\) .*/\\1/' | sed 's/^0*\\([0-9]\\)/\\1/'")
            case "statfs": value = try Shell.check("stat -f -c \(parts[1].replacingOccurrences(of: k.path, with: "")) \(Shell.quote(k.path))")
            case "md5": value = try Shell.check("printf 'suite-guest\\n' | md5sum | cut -d' ' -f1")
            case "du": value = try Shell.check("du -s \(Shell.quote(path)) | cut -f1")
            case "df": value = try ShellDfTests.kernelTable(k.path, human: true)
            default: value = "?" + key
            }
            text.replaceSubrange(open.lowerBound..<close.upperBound, with: value.hasSuffix("\n") && parts[0] != "df" ? String(value.dropLast()) : value)
        }
        return text
    }

    @Test func aReadOnlyScriptPrintsWhatGuestfishPrints() throws {
        let dir = try TempDir("imagemount-shell-suite")
        let image = try Self.guest(in: dir)
        let result = try ImageMountBinary.run(["shell", "--ro", "-a", image, "-i"], stdin: Data(Self.readScript.utf8))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let expected = try Self.fill(Self.readExpected, image: image)
        #expect(result.text == expected)
    }

    @Test func aWritingScriptPrintsWhatGuestfishPrintsAndLeavesTheFilesystemClean() throws {
        let dir = try TempDir("imagemount-shell-suite")
        let image = try Self.guest(in: dir)
        let result = try ImageMountBinary.run(["shell", "--rw", "-a", image, "-i"], stdin: Data(Self.writeScript.utf8))
        #expect(result.status == 1)
        #expect(result.stderr == "imagemount: mkdir: /w/not: Read-only file system\n")
        let expected = try Self.fill(Self.writeExpected, image: image)
        #expect(result.text == expected)
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    /// Every command issue 19 names is run by one of the scripts above, or (for the host
    /// transfers, upload, copy-in, copy-out, tar-in and tar-out) by ShellWriteTests' host script,
    /// ll and statns by ShellCommandTests against the kernel's ls -la and stat.
    @Test func theScriptsRunEveryCommandTheIssueNames() throws {
        let named = """
            ls ll cat head tail download upload write write-append touch mkdir mkdir-p rm rm-rf rmdir mv cp cp-a
            ln-s ln chmod chown find find0 checksum stat lstat statns lstatns statvfs df-h du exists is-file is-dir
            is-symlink readlink getxattrs setxattr removexattr tar-in tar-out copy-in copy-out edit list-filesystems
            list-partitions list-devices lvs vgs pvs inspect-os inspect-get-roots inspect-get-type inspect-get-distro
            inspect-get-major-version inspect-get-minor-version inspect-get-product-name inspect-get-hostname
            inspect-get-package-format inspect-get-package-management inspect-get-mountpoints inspect-get-filesystems
            mount mount-ro umount sync echo help
            """.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let hostCommands: Set<String> = ["upload", "copy-in", "copy-out", "tar-in", "tar-out", "statns", "ll"]
        var run = Set<String>()
        for script in [Self.readScript, Self.writeScript] {
            for line in script.split(separator: "\n") {
                if let parsed = try ShellWords.parse(String(line)) { run.insert(parsed.command) }
            }
        }
        for command in named {
            #expect(ShellBuiltin.byName[command] != nil, "\(command) is not a shell command")
            #expect(run.contains(command) || hostCommands.contains(command), "\(command) is run by no script of the suite")
        }
    }
}
