import Foundation
import Testing
import TestSupport

/// Guest names that must never become host paths: directory entries patched (after
/// `mke2fs -d`) to hold `../../../PWNED`, a `/` in the middle, a second `..`, and a directory
/// that contains its own ancestor. copy-out copies everything else, warns about each, exits 1,
/// and creates nothing outside its target; the FUSE mount and `ls` never show such names.
@Suite(.serialized)
struct HostileNameTests {
    /// An ext4 (no metadata_csum, so the patched directory block is still read) whose /dir holds
    /// `good`, and three names patched into hostile ones of the same length.
    static func image(in dir: TempDir) throws -> String {
        let root = dir.file("root"), image = dir.file("hostile.img")
        try Shell.check("mkdir -p \(Shell.quote(root))/dir/sub \(Shell.quote(root))/etc && echo guest > \(Shell.quote(root))/etc/hostname && " +
                        "echo good > \(Shell.quote(root))/dir/good && echo escape > \(Shell.quote(root))/dir/PWNEDPWNEDPWNE && " +
                        "echo slash > \(Shell.quote(root))/dir/slashXname && echo dots > \(Shell.quote(root))/dir/zq && " +
                        "echo deep > \(Shell.quote(root))/dir/sub/inner && " +
                        "truncate -s 16M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -O ^metadata_csum -d \(Shell.quote(root)) \(Shell.quote(image))")
        // The damage, visible here: each name's bytes in the directory block are overwritten.
        let patch = """
            import sys
            p = sys.argv[1]
            data = bytearray(open(p, 'rb').read())
            for old, new in ((b'PWNEDPWNEDPWNE', b'../../../PWNED'), (b'slashXname', b'slash/name'), (b'\\x02\\x01zq', b'\\x02\\x01..')):
                at = data.find(old)
                assert at > 0 and data.find(old, at + 1) < 0, old
                data[at:at + len(old)] = new
            open(p, 'wb').write(data)
            """
        try Shell.check("python3 -c \(Shell.quote(patch)) \(Shell.quote(image))")
        return image
    }

    @Test func copyOutNeverWritesOutsideItsTarget() throws {
        let dir = try TempDir("imagemount-hostile")
        let image = try Self.image(in: dir)
        let out = dir.file("a/b/c/out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let r = try ImageMountBinary.run(["copy-out", "-a", image, "/dir", out])
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("entry \"../../../PWNED\" skipped: name contains '/'") && $0.contains("inode") }, "\(r.stderr)")
        #expect(lines.contains { $0.contains("entry \"slash/name\" skipped: name contains '/'") }, "\(r.stderr)")
        // A second ".." is never listed by the ext driver (no real child has that name), so it
        // needs no warning; it is not copied either (the listing below).
        #expect(lines.last?.contains("2 damaged guest entries were not copied") == true, "\(r.stderr)")
        // Nothing anywhere but the good entries, inside the target.
        let everything = try Shell.check("cd \(Shell.quote(dir.path)) && find . -mindepth 1 ! -path './root*' ! -name hostile.img | LC_ALL=C sort")
        #expect(everything == "./a\n./a/b\n./a/b/c\n./a/b/c/out\n./a/b/c/out/dir\n./a/b/c/out/dir/good\n./a/b/c/out/dir/sub\n./a/b/c/out/dir/sub/inner\n",
                "\(everything)")
        #expect(try Shell.check("cat \(Shell.quote(out))/dir/good \(Shell.quote(out))/dir/sub/inner") == "good\ndeep\n")
    }

    @Test func mountAndLsNeverShowSuchNames() throws {
        let dir = try TempDir("imagemount-hostile")
        let image = try Self.image(in: dir)
        let m = try FuseMount(images: [image])
        do {
            defer { m.close() }
            #expect(try Shell.check("ls -a \(Shell.quote(m.path))/dir") == ".\n..\ngood\nsub\n")
            #expect(try Shell.check("cat \(Shell.quote(m.path))/dir/good") == "good\n")
        }
        let ls = try ImageMountBinary.run(["ls", "-a", image, "/dir"])
        #expect(ls.status == 0 && ls.text == "good\nsub\n", "\(ls.text) \(ls.stderr)")
        #expect(ls.stderr.contains("entry \"../../../PWNED\" skipped"), "\(ls.stderr)")
    }

    /// A directory entry in /dir/sub pointing back at /dir (debugfs `ln` makes the hard link
    /// the kernel would never allow): copy-out copies /dir once and stops there.
    @Test func copyOutOfADirectoryLoopEnds() throws {
        let dir = try TempDir("imagemount-hostile")
        let root = dir.file("root"), image = dir.file("loop.img")
        try Shell.check("mkdir -p \(Shell.quote(root))/dir/sub && echo x > \(Shell.quote(root))/dir/sub/f && " +
                        "truncate -s 16M \(Shell.quote(image)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(image)) && " +
                        "debugfs -w -R 'ln /dir /dir/sub/back' \(Shell.quote(image)) 2>/dev/null")
        let out = dir.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let r = try ImageMountBinary.run(["copy-out", "-a", image, "/dir", out])
        #expect(r.status == 1 && r.stderr.contains("was met before"), "exit \(r.status): \(r.stderr)")
        #expect(try Shell.check("cd \(Shell.quote(out)) && find . | LC_ALL=C sort") == ".\n./dir\n./dir/sub\n./dir/sub/f\n")
    }

    /// tar-out of the same damage: the hostile names are left out of the archive (never a
    /// member named ../../../PWNED), the loop is archived once, and the exit status says so.
    @Test func tarOutLeavesHostileNamesAndLoopsOut() throws {
        let dir = try TempDir("imagemount-hostile")
        let image = try Self.image(in: dir)
        let r = try ImageMountBinary.run(["tar-out", "-a", image, "/dir", dir.file("h.tar")])
        #expect(r.status == 1 && r.stderr.contains("entry \"../../../PWNED\" skipped"), "\(r.stderr)")
        let names = try Shell.check("tar -tf \(Shell.quote(dir.file("h.tar"))) | sed 's,\\(.\\)/$,\\1,' | LC_ALL=C sort")
        #expect(names == ".\n./good\n./sub\n./sub/inner\n", "\(names)")
        let root = dir.file("loop"), loopImage = dir.file("loop.img")
        try Shell.check("mkdir -p \(Shell.quote(root))/dir/sub && echo x > \(Shell.quote(root))/dir/sub/f && " +
                        "truncate -s 16M \(Shell.quote(loopImage)) && mke2fs -q -F -t ext4 -d \(Shell.quote(root)) \(Shell.quote(loopImage)) && " +
                        "debugfs -w -R 'ln /dir /dir/sub/back' \(Shell.quote(loopImage)) 2>/dev/null")
        let loop = try ImageMountBinary.run(["tar-out", "-a", loopImage, "/dir", dir.file("l.tar")])
        #expect(loop.status == 1 && loop.stderr.contains("was met before"), "\(loop.stderr)")
        let looped = try Shell.check("tar -tf \(Shell.quote(dir.file("l.tar"))) | sed 's,\\(.\\)/$,\\1,' | LC_ALL=C sort")
        #expect(looped == ".\n./sub\n./sub/f\n", "\(looped)")
    }
}
