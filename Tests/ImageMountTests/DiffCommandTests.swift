import Foundation
import Testing
import TestSupport
@testable import ImageMount

/// `imagemount diff`: a template made with `mke2fs -d`, a clone (`qemu-img create -f qcow2 -b
/// TEMPLATE -F raw`) changed through a `--rw` mount (content, mode, owner, xattr, rename,
/// delete, new file, hard link); the output checked against the record shapes of virt-diff
/// (guestfs-tools diff/diff.c, its test-virt-diff.sh) derived by hand, and the fast path
/// (qcow2 allocation map → ext inode scope) checked equal to the full walk (--no-fast) for
/// every output option.
@Suite(.serialized) struct DiffCommandTests {
    static let environment = ["TZ": "UTC", "LC_ALL": "C"]

    struct Fixture {
        let dir: TempDir
        let template: String
        let clone: String
    }

    /// The template's tree: sizes chosen so each record's size is known.
    static func template(_ dir: TempDir, extraFiles: Int = 0) throws -> String {
        let tree = dir.file("tree"), image = dir.file("template.img")
        var script = """
            set -e; t=\(Shell.quote(tree))
            mkdir -p $t/etc $t/data $t/dir/sub
            printf 'hello\\n' > $t/etc/motd
            printf '127.0.0.1 localhost\\n' > $t/etc/hosts
            printf 'aaaa\\n' > $t/data/a.txt
            head -c 5000 /dev/urandom > $t/data/b.bin
            printf 'keep\\n' > $t/data/keep
            printf 'x\\n' > $t/dir/sub/x
            ln -s etc/motd $t/link
            chmod 755 $t/dir/sub
            """
        if extraFiles > 0 {
            script += "\nmkdir -p $t/many; for i in $(seq 1 \(extraFiles)); do mkdir -p $t/many/d$((i % 50)); echo $i > $t/many/d$((i % 50))/f$i; done"
        }
        script += "\ntruncate -s 64M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -b 4096 -d $t \(Shell.quote(image))"
        try Shell.check(script)
        return image
    }

    /// The clone, changed through a read-write mount of the overlay.
    static func fixture(extraFiles: Int = 0) throws -> Fixture {
        let dir = try TempDir("imagemount-diff")
        let template = try Self.template(dir, extraFiles: extraFiles)
        let clone = dir.file("clone.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 -b \(Shell.quote(template)) -F raw \(Shell.quote(clone))")
        // Every change a second later than the template's times, so ctimes differ.
        sleep(1)
        let mount = try FuseMount(images: [clone], arguments: ["--rw"])
        let m = Shell.quote(mount.path)
        defer { mount.close() }
        try Shell.check("""
            set -e; m=\(m)
            printf 'more\\n' >> $m/etc/motd
            chmod 600 $m/data/keep
            chown 1000:1000 $m/data/a.txt
            setfattr -n user.note -v hi $m/data/b.bin
            mv $m/dir/sub/x $m/dir/y
            chmod 700 $m/dir/sub
            rm $m/etc/hosts
            printf 'new\\n' > $m/new.txt
            ln $m/data/a.txt $m/data/a-link
            """)
        return Fixture(dir: dir, template: template, clone: clone)
    }

    static func diff(_ f: Fixture, _ options: [String], full: Bool) throws -> Shell.Output {
        try ImageMountBinary.run(["diff", "--format=raw", "-a", f.template, "--format=qcow2", "-A", f.clone, "-v"]
                                 + options + (full ? ["--no-fast"] : []), environment: environment)
    }

    @Test("the output of virt-diff's shape, and the fast path gives it too")
    func expectedOutput() throws {
        let f = try Self.fixture()
        // diff.c `changed`: a regular file whose ctime moved is '=' (chmod, chown, setxattr
        // and ln all move it), with its diff -u hunks (none when the bytes are the same); a
        // directory whose mode changed is '-', '+' and '# changed:'; times of directories and
        // their link counts are ignored by default.
        let expected = """
            + - 0644          5 /data/a-link
            = - 0644          5 /data/a.txt
            @@ End of diff @@
            = - 0644       5000 /data/b.bin
            @@ End of diff @@
            = - 0644          5 /data/keep
            @@ End of diff @@
            - d 0755       4096 /dir/sub
            + d 0700       4096 /dir/sub
            # changed: st_mode
            - - 0644          2 /dir/sub/x
            + - 0644          2 /dir/y
            - - 0644         20 /etc/hosts
            = - 0644          6 /etc/motd
            @@ -1 +1,2 @@
             hello
            +more
            @@ End of diff @@
            + - 0644          4 /new.txt

            """
        let full = try Self.diff(f, [], full: true)
        #expect(full.status == 0, "\(full.stderr)")
        #expect(full.text == expected)
        #expect(full.stderr.contains("diff: full walk"))
        let fast = try Self.diff(f, [], full: false)
        #expect(fast.status == 0, "\(fast.stderr)")
        #expect(fast.stderr.contains("diff: fast path"), "\(fast.stderr)")
        #expect(fast.text == expected)
    }

    @Test("fast and full walks agree for every output option", arguments: [
        ["--csv"], ["--all"], ["--checksum"], ["--checksum=sha256", "--csv", "--uids"], ["--xattrs", "--times", "--atime"],
        ["--dir-links", "--dir-times", "--extra-stats", "--time-t"], ["-h", "--uids"],
    ])
    func fastEqualsFull(options: [String]) throws {
        let f = try Self.fixture()
        let full = try Self.diff(f, options, full: true), fast = try Self.diff(f, options, full: false)
        #expect(full.status == 0 && fast.status == 0, "\(full.stderr) \(fast.stderr)")
        #expect(fast.stderr.contains("diff: fast path"), "\(fast.stderr)")
        #expect(!full.text.isEmpty)
        #expect(fast.text == full.text)
    }

    /// The directory listings the fast path reads itself (extent-mapped directories, one block
    /// or an htree of many) and those it leaves to libext2fs (ext2's block maps): a file
    /// rewritten in place, whose directory does not change, must still be found through it, and
    /// a hard link to it in another directory too.
    @Test("fast path finds in-place changes under htree and block-mapped directories", arguments: ["ext4", "ext2"])
    func inPlaceChangeUnderUnchangedDirectory(type: String) throws {
        let dir = try TempDir("imagemount-diff")
        let tree = dir.file("tree"), template = dir.file("template.img"), clone = dir.file("clone.qcow2")
        try Shell.check("""
            set -e; t=\(Shell.quote(tree))
            mkdir -p $t/big $t/other $t/small
            for i in $(seq 1 3000); do echo "file $i" > $t/big/entry-with-a-long-name-$i; done
            echo small > $t/small/one
            ln $t/big/entry-with-a-long-name-1234 $t/other/hardlink
            truncate -s 64M \(Shell.quote(template)) && mke2fs -q -F -t \(type) -b 4096 -d $t \(Shell.quote(template))
            qemu-img create -q -f qcow2 -b \(Shell.quote(template)) -F raw \(Shell.quote(clone))
            """)
        sleep(1)
        do {
            let mount = try FuseMount(images: [clone], arguments: ["--rw"])
            defer { mount.close() }
            let m = Shell.quote(mount.path)
            // Same length, in place: the file's data and inode change, no directory does.
            try Shell.check("""
                set -e; printf 'FILE 1234\\n' | dd of=\(m)/big/entry-with-a-long-name-1234 conv=notrunc status=none
                printf 'SMALL\\n' | dd of=\(m)/small/one conv=notrunc status=none
                """)
        }
        let f = Fixture(dir: dir, template: template, clone: clone)
        let full = try Self.diff(f, [], full: true), fast = try Self.diff(f, [], full: false)
        #expect(full.status == 0 && fast.status == 0, "\(full.stderr) \(fast.stderr)")
        #expect(fast.stderr.contains("diff: fast path"), "\(fast.stderr)")
        for path in ["/big/entry-with-a-long-name-1234", "/other/hardlink", "/small/one"] {
            #expect(full.text.contains("= - 0644         10 \(path)") || full.text.contains("= - 0644          6 \(path)"), "\(path): \(full.text)")
        }
        #expect(fast.text == full.text)
    }

    @Test("--csv: quoted fields, the '#' line's fields comma-separated, no file changes")
    func csvShape() throws {
        let f = try Self.fixture()
        let out = try Self.diff(f, ["--csv", "--xattrs"], full: false)
        #expect(out.status == 0, "\(out.stderr)")
        let lines = out.text.split(separator: "\n").map(String.init)
        #expect(lines.contains("-,d,0755,4096,/dir/sub"))
        #expect(lines.contains("#,changed:,st_mode"))
        #expect(lines.contains("=,-,0644,6,/etc/motd"))
        #expect(lines.contains("=,-,0644,5000,/data/b.bin"))
        #expect(!out.text.contains("@@"))
    }

    @Test("the same image on both sides: nothing, and the fast path looks at nothing")
    func identical() throws {
        let dir = try TempDir("imagemount-diff")
        let template = try Self.template(dir)
        let clone = dir.file("clone.qcow2")
        try Shell.check("qemu-img create -q -f qcow2 -b \(Shell.quote(template)) -F raw \(Shell.quote(clone))")
        let out = try ImageMountBinary.run(["diff", "-a", template, "-A", clone, "-v", "--all", "--checksum"])
        #expect(out.status == 0 && out.text.isEmpty, "\(out.text) \(out.stderr)")
        #expect(out.stderr.contains("0 node(s) may differ"), "\(out.stderr)")
        // Two unrelated copies: no shared file, so the full walk, and still nothing.
        let copy = dir.file("copy.img")
        try Shell.check("cp \(Shell.quote(template)) \(Shell.quote(copy))")
        let walked = try ImageMountBinary.run(["diff", "-a", template, "-A", copy, "-v"])
        #expect(walked.status == 0 && walked.text.isEmpty && walked.stderr.contains("diff: full walk"), "\(walked.stderr)")
    }

    @Test("usage errors as virt-diff words them")
    func usage() throws {
        let noSecond = try ImageMountBinary.run(["diff", "-a", "/nonexistent"])
        #expect(noSecond.status == 1 && noSecond.stderr.contains("you must specify at least one -A or -D option"))
        let both = try ImageMountBinary.run(["diff", "-a", "x", "-A", "y", "-h", "--csv"])
        #expect(both.status == 1 && both.stderr.contains("you cannot use -h and --csv options together"))
        let extra = try ImageMountBinary.run(["diff", "-a", "x", "-A", "y", "stray"])
        #expect(extra.status == 1 && extra.stderr.contains("extra argument"))
    }

    /// GNU diff -u (minus its two header lines) is the oracle for the hunks.
    @Test("unified diff hunks equal GNU diff -u | tail -n +3", arguments: [
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n", "1\n2\nX\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\nY\n18\n19\n20\n"),
        ("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "1\n2\n3\nX\n5\n6\n7\n8\nY\n10\n"),
        ("", "new\nlines\n"),
        ("gone\n", ""),
        ("no newline", "no newline\nnow\n"),
        ("x\ny\nz", "x\ny\nw"),
        ("a\nb\nc\nd\n", "d\nc\nb\na\n"),
    ])
    func unifiedDiff(old: String, new: String) throws {
        let dir = try TempDir("imagemount-udiff")
        try old.write(toFile: dir.file("a"), atomically: false, encoding: .utf8)
        try new.write(toFile: dir.file("b"), atomically: false, encoding: .utf8)
        let gnu = try Shell.run("diff -u \(Shell.quote(dir.file("a"))) \(Shell.quote(dir.file("b"))) | tail -n +3").text
        var out = OutputBuffer()
        UnifiedDiff.write(old: Array(old.utf8), new: Array(new.utf8), into: &out)
        #expect(String(decoding: out.bytes, as: UTF8.self) == gnu)
    }
}
