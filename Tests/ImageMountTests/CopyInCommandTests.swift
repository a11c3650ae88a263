import Foundation
import Testing
import TestSupport

/// `imagemount copy-in` against the tree it copied: the kernel's ext4 must show the same
/// entries, modes, owners, sizes, link counts, nanosecond mtimes, symlink targets, xattrs and
/// holes, and e2fsck must be clean.
@Suite struct CopyInCommandTests {
    static let formats = ["raw", "qcow2", "qcow2-luks", "vdi", "vpc", "vhdx", "qed", "parallels"]

    static func source(in dir: TempDir) throws -> String {
        let s = dir.file("src")
        let script = """
            set -eu
            S=\(Shell.quote(s))
            mkdir -p "$S/tree/sub/deeper" "$S/tree/empty"
            echo hello > "$S/tree/a.txt"
            ln "$S/tree/a.txt" "$S/tree/sub/hard"
            ln -s ../a.txt "$S/tree/sub/link"
            ln -s "$(printf '%0200d' 0 | tr 0 y)" "$S/tree/longlink"
            head -c 2500000 /dev/urandom > "$S/tree/sub/deeper/random"
            truncate -s 30M "$S/tree/sparse" && printf end >> "$S/tree/sparse"
            printf data | dd of="$S/tree/sparse" bs=1 seek=10000000 conv=notrunc status=none
            echo owned > "$S/tree/owned" && chown 1234:5678 "$S/tree/owned" && chmod 4751 "$S/tree/owned"
            chmod 1777 "$S/tree/empty"
            mknod "$S/tree/cdev" c 300 70000 && mkfifo "$S/tree/fifo"
            setfattr -n user.test -v value1 "$S/tree/a.txt"
            setfattr -n trusted.t -v 0x00ff "$S/tree/owned"
            setfattr -n system.posix_acl_access -v 0x02000000010006000000000002000400e8030000040004000000000010000400000000002000000000000000 "$S/tree/sub/deeper/random"
            touch -h -d '2021-03-04 05:06:07.123456789' "$S/tree/sub/link" "$S/tree/a.txt"
            touch -d '1999-12-31 23:59:59.999999999' "$S/tree/sub"
            echo single > "$S/single.txt"
            """
        try Shell.check("bash -c \(Shell.quote(script))")
        return s
    }

    static func fresh(_ dir: TempDir, size: String = "128M") throws -> String {
        let image = dir.file("fs.img")
        try Shell.check("truncate -s \(size) \(Shell.quote(image)) && mke2fs -q -F -t ext4 -I 256 \(Shell.quote(image))")
        return image
    }

    /// Type, mode, owner, size (not of directories), link count, mtime (unless `times` is
    /// false), path and link target of everything below `dir`; then the xattrs.
    static func describe(_ dir: String, times: Bool = true) throws -> String {
        try Shell.check("cd \(Shell.quote(dir)) && find . ! -path './lost+found*' ! -path . -printf '%y %m %U %G %s %n \(times ? "%TY-%Tm-%Td+%TT " : "")%p -> %l\\n' | " +
                        "awk '$1 == \"d\" { $5 = \"-\" } { print }' | LC_ALL=C sort && " +
                        "find . ! -path './lost+found*' | LC_ALL=C sort | xargs -d '\\n' getfattr -h -d -e hex -m - 2>/dev/null || true")
    }

    @Test(arguments: formats)
    func treeArrivesWithEverythingKept(format: String) throws {
        let dir = try TempDir("imagemount-copyin")
        let src = try Self.source(in: dir)
        let written = try WritableFormats.prepare(Self.fresh(dir), format: format)
        try ImageMountBinary.check(["copy-in"] + WritableFormats.arguments(written, format: format) + ["-a", written, src + "/tree", src + "/single.txt", "/"])
        let image = try WritableFormats.finish(written, format: format)
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        let k = try KernelMount(image: image)
        defer { k.close() }
        let expected = try Self.describe(src), got = try Self.describe(k.path)
        #expect(got == expected)
        try Shell.check("cmp \(Shell.quote(src + "/tree/sparse")) \(Shell.quote(k.path + "/tree/sparse"))")
        #expect(Int(try Shell.check("stat -c %b \(Shell.quote(k.path + "/tree/sparse"))").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 9999 < 100)
        #expect(try Shell.check("stat -c %i \(Shell.quote(k.path))/tree/a.txt \(Shell.quote(k.path))/tree/sub/hard | uniq | wc -l") == "1\n")
    }

    @Test func existingDirectoriesAreMergedAndFilesReplaced() throws {
        let dir = try TempDir("imagemount-copyin")
        let src = try Self.source(in: dir)
        let image = try Self.fresh(dir)
        try ImageMountBinary.check(["copy-in", "-a", image, src + "/tree", "/"])
        try Shell.check("echo changed > \(Shell.quote(src + "/tree/a.txt")) && echo new > \(Shell.quote(src + "/tree/sub/new"))")
        try ImageMountBinary.check(["copy-in", "-a", image, src + "/tree", "/"])
        #expect(try ImageMountBinary.check(["cat", "-a", image, "/tree/a.txt", "/tree/sub/new", "/tree/sub/hard"]) == "changed\nnew\nchanged\n")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    @Test func aCopyThatCannotFitLeavesTheImageAsItWas() throws {
        let dir = try TempDir("imagemount-copyin")
        let image = try Self.fresh(dir, size: "8M")
        let big = dir.file("big")
        try Shell.check("mkdir \(Shell.quote(big)) && head -c 12000000 /dev/urandom > \(Shell.quote(big + "/blob"))")
        let before = try Shell.check("sha256sum \(Shell.quote(image))")
        let r = try ImageMountBinary.run(["copy-in", "-a", image, big, "/"])
        #expect(r.status != 0 && r.stderr.contains("not enough space"), "\(r.stderr)")
        #expect(try Shell.check("sha256sum \(Shell.quote(image))") == before)
    }

    @Test func guestDirectoryMustExist() throws {
        let dir = try TempDir("imagemount-copyin")
        let src = try Self.source(in: dir)
        let image = try Self.fresh(dir, size: "8M")
        let r = try ImageMountBinary.run(["copy-in", "-a", image, src + "/single.txt", "/nowhere"])
        #expect(r.status != 0 && r.stderr.contains("/nowhere"), "\(r.stderr)")
        let ro = try ImageMountBinary.run(["copy-in", "--ro", "-a", image, src + "/single.txt", "/"])
        #expect(ro.status != 0)
    }
}

extension CopyInCommandTests {
    /// -m DEV[:MOUNTPOINT] with copy-in: the file lands on the filesystem named, nowhere else.
    @Test func mountOptionChoosesTheFilesystem() throws {
        let dir = try TempDir("imagemount-copy-in-m")
        let disk = dir.file("mbr.img")
        try Shell.check("cp --sparse=always \(Shell.quote(try DiskFixtures.mbr().path)) \(Shell.quote(disk))")
        try Data("into sda5\n".utf8).write(to: URL(fileURLWithPath: dir.file("note")))
        try ImageMountBinary.check(["copy-in", "-a", disk, "-m", "/dev/sda5", dir.file("note"), "/etc"])
        #expect(try ImageMountBinary.check(["cat", "-a", disk, "-m", "/dev/sda5", "/etc/note"]) == "into sda5\n")
        #expect(try ImageMountBinary.run(["cat", "-a", disk, "-m", "/dev/sda1", "/etc/note"]).status != 0)
    }
}
