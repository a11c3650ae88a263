import Foundation
import Testing
import TestSupport

/// `--overlay FILE` and `imagemount commit`: writes land in a new qcow2 overlay and never in
/// the original (its sha256 unchanged; `ImageMountBinary.run` also checks size, mtime and ctime
/// of every -a image of a command given --overlay); `qemu-img check` finds the overlay clean;
/// after commit the original equals what QEMU reads through the overlay chain
/// (`qemu-img convert`, taken before the commit), which `qemu-img compare` checks.
@Suite struct OverlayCommitTests {
    static func sha256(_ path: String) throws -> String {
        try Shell.check("sha256sum < \(Shell.quote(path))")
    }

    /// A small ext4 image (raw, or converted to qcow2) and a host tree to copy in.
    static func fixture(_ dir: TempDir, format: String) throws -> (image: String, tree: String) {
        let raw = dir.file("base.img")
        let tree = dir.file("tree")
        try Shell.check("""
            set -e; mkdir -p \(Shell.quote(tree))/etc/deep && echo hello > \(Shell.quote(tree))/etc/motd
            head -c 3000000 /dev/urandom > \(Shell.quote(tree))/etc/deep/blob
            truncate -s 64M \(Shell.quote(raw)) && mke2fs -q -F -t ext4 \(Shell.quote(raw))
            """)
        guard format == "qcow2" else { return (raw, tree) }
        let q = dir.file("base.qcow2")
        try Shell.check("qemu-img convert -f raw -O qcow2 \(Shell.quote(raw)) \(Shell.quote(q)) && rm \(Shell.quote(raw))")
        return (q, tree)
    }

    @Test(arguments: ["raw", "qcow2"])
    func copyInThroughAnOverlayThenCommit(format: String) throws {
        let dir = try TempDir("diffov-overlay")
        let (image, tree) = try Self.fixture(dir, format: format)
        let before = try Self.sha256(image)
        let overlay = dir.file("try.qcow2")
        try ImageMountBinary.check(["copy-in", "--format", format, "-a", image, "--overlay", overlay, tree + "/etc", "/"])
        #expect(try Self.sha256(image) == before)
        let check = try Shell.run("qemu-img check \(Shell.quote(overlay)) 2>&1")
        #expect(check.status == 0, "\(check.text)")
        let info = try Shell.check("qemu-img info --output=json \(Shell.quote(overlay))")
        #expect(info.contains("\"backing-filename-format\": \"\(format)\""), "\(info)")
        // The overlay reads as the written filesystem, to us and to the kernel's e2fsck.
        #expect(try ImageMountBinary.check(["cat", "-a", overlay, "/etc/motd"]) == "hello\n")
        let written = dir.file("written.raw")
        try Shell.check("qemu-img convert -O raw \(Shell.quote(overlay)) \(Shell.quote(written))")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(written)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        #expect(try Shell.run("qemu-img compare \(Shell.quote(image)) \(Shell.quote(written))").status == 1)

        #expect(try ImageMountBinary.check(["commit", overlay]) == "Image committed.\n")
        let compare = try Shell.run("qemu-img compare -f \(format) -F raw \(Shell.quote(image)) \(Shell.quote(written)) 2>&1")
        #expect(compare.status == 0, "\(compare.text)")
        if format == "qcow2" {
            let baseCheck = try Shell.run("qemu-img check \(Shell.quote(image)) 2>&1")
            #expect(baseCheck.status == 0, "\(baseCheck.text)")
        }
        // Emptied: the overlay allocates nothing and reads as its backing file.
        let map = try Shell.check("qemu-img map --output=json \(Shell.quote(overlay))")
        #expect(!map.contains("\"depth\": 0"), "\(map)")
        #expect(try Shell.run("qemu-img check \(Shell.quote(overlay)) 2>&1").status == 0)
        #expect(try Shell.run("qemu-img compare \(Shell.quote(overlay)) \(Shell.quote(written))").status == 0)
    }

    @Test func commitDashDKeepsTheOverlayAndTheSameWritesDirectlyGiveTheSameFiles() throws {
        let dir = try TempDir("diffov-overlay")
        let (image, tree) = try Self.fixture(dir, format: "raw")
        let direct = dir.file("direct.img")
        try Shell.check("cp --sparse=always \(Shell.quote(image)) \(Shell.quote(direct))")
        let overlay = dir.file("o.qcow2")
        try ImageMountBinary.check(["copy-in", "--format", "raw", "-a", image, "--overlay", overlay, tree + "/etc", "/"])
        try ImageMountBinary.check(["copy-in", "--format", "raw", "-a", direct, tree + "/etc", "/"])
        #expect(try ImageMountBinary.check(["commit", "-d", overlay]) == "Image committed.\n")
        let map = try Shell.check("qemu-img map --output=json \(Shell.quote(overlay))")
        #expect(map.contains("\"depth\": 0"), "the overlay was kept: \(map)")
        // Byte equality with a direct copy-in is out of reach (ctimes are the time of the
        // write), so the committed and the direct image are compared as file trees.
        let ls = ["ls", "-l", "-R", "/etc"]
        let committed = try ImageMountBinary.check([ls[0], "-a", image] + ls.dropFirst())
        #expect(committed == (try ImageMountBinary.check([ls[0], "-a", direct] + ls.dropFirst())))
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/etc/deep/blob"]) == (try ImageMountBinary.check(["cat", "-a", direct, "/etc/deep/blob"])))
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    @Test func refusals() throws {
        let dir = try TempDir("diffov-overlay")
        let (image, tree) = try Self.fixture(dir, format: "raw")
        let before = try Self.sha256(image)
        let existing = dir.file("exists.qcow2")
        try Shell.check("echo keep > \(Shell.quote(existing))")
        let r = try ImageMountBinary.run(["copy-in", "-a", image, "--overlay", existing, tree + "/etc", "/"])
        #expect(r.status != 0 && r.stderr.contains("exists"), "\(r.stderr)")
        #expect(try Shell.check("cat \(Shell.quote(existing))") == "keep\n")
        let two = try ImageMountBinary.run(["copy-in", "-a", image, "--overlay", dir.file("a"), "--overlay", dir.file("b"), tree + "/etc", "/"])
        #expect(two.status != 0 && two.stderr.contains("one --overlay per -a"), "\(two.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("a")))
        let noBacking = try ImageMountBinary.run(["commit", image])
        #expect(noBacking.status != 0, "\(noBacking.stderr)")
        #expect(try Self.sha256(image) == before)
    }
}
