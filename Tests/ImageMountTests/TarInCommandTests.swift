import Foundation
import Testing
import TestSupport

/// `imagemount tar-in`: a GNU tar archive unpacked into an image gives the tree copy-in gives
/// (as the kernel's ext4 shows both), e2fsck-clean; hostile member names write nothing outside
/// DIR; vfat takes what it can hold; a read-only driver says so in one line.
@Suite(.serialized) struct TarInCommandTests {
    static func blankExt4(_ path: String, size: String = "96M") throws {
        try Shell.check("truncate -s \(size) \(Shell.quote(path)) && mke2fs -F -q -t ext4 \(Shell.quote(path))")
    }

    @Test(arguments: ["posix", "gnu"])
    func gnuTarArchiveEqualsCopyIn(format: String) throws {
        let scratch = try TempDir("tar-in")
        let tree = scratch.file("tree")
        try TarFixtures.buildTree(tree)
        let archive = scratch.file("tree.tar")
        // --format=gnu has no xattrs: that variant checks old GNU sparse members and names.
        let meta = format == "posix" ? "--xattrs --xattrs-include='*' --acls" : ""
        try Shell.check("tar --format=\(format) \(meta) -cSf \(Shell.quote(archive)) -C \(Shell.quote(tree)) .")
        let viaTar = scratch.file("tar.img"), viaCopy = scratch.file("copy.img")
        try Self.blankExt4(viaTar)
        try Self.blankExt4(viaCopy)
        let options = format == "posix" ? ["--xattrs", "--acls"] : []
        let r = try ImageMountBinary.run(["tar-in", "-a", viaTar] + options + [archive, "/"])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        try ImageMountBinary.check(["copy-in", "-a", viaCopy, tree, "/"])
        for image in [viaTar, viaCopy] {
            let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
            #expect(fsck.status == 0, "\(image): \(fsck.text)")
        }
        var ours = try TarFixtures.withKernelMount(viaTar) { try TarFixtures.listing($0, skip: ["lost+found"]) }
        var theirs = try TarFixtures.withKernelMount(viaCopy) { try TarFixtures.listing($0 + "/tree") }
        if format == "gnu" {
            // Without xattrs in the archive, compare everything else.
            ours = Self.withoutXattrs(ours)
            theirs = Self.withoutXattrs(theirs)
        }
        #expect(ours == theirs)
        #expect(format == "gnu" || ours.contains("946684799987654321"))
        // Sparse members became sparse files.
        try TarFixtures.withKernelMount(viaTar) { root throws in
            #expect(try TarFixtures.allocated(root + "/data/sparse") < 64 * 1024)
            #expect(try TarFixtures.allocated(root + "/data/all-hole") < 8 * 1024)
        }
    }

    /// What a `--format=gnu` archive holds of a listing: no xattrs, and whole-second times.
    static func withoutXattrs(_ listing: String) -> String {
        listing.split(separator: "\n").map { line in
            var fields = line.split(separator: " ").filter { !$0.contains("=") || $0.hasPrefix("nlink=") || $0.hasPrefix("links=") || $0.hasPrefix("rdev=") }
            if fields.count > 4 { fields[4] = fields[4].dropLast(9) }
            return fields.joined(separator: " ")
        }.joined(separator: "\n")
    }

    /// Member names that would leave DIR: `../x`, `/etc/passwd` (stripped to DIR/etc/passwd, as
    /// GNU tar does), a symlink to / and a member through it, a hard link to ../outside, a
    /// name with a NUL-free but '..'-laden middle. Nothing outside DIR changes.
    @Test func hostileMemberNamesStayInside() throws {
        let scratch = try TempDir("tar-in-hostile")
        let archive = scratch.file("evil.tar")
        try Shell.check("""
            python3 - \(Shell.quote(archive)) <<'PY'
            import io, sys, tarfile
            t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
            def reg(name, data=b'evil\\n'):
                i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
            def link(name, target, kind):
                i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)
            reg('../x')
            reg('/etc/passwd', b'root::0:0::/:/bin/sh\\n')
            reg('ok/../../y')
            link('up', '/', tarfile.SYMTYPE)
            reg('up/through-symlink')
            link('dotdot', '../..', tarfile.SYMTYPE)
            reg('dotdot/z')
            link('hard', '../outside', tarfile.LNKTYPE)
            reg('fine/inside', b'fine\\n')
            t.close()
            PY
            """)
        let image = scratch.file("h.img")
        let tree = scratch.file("t")
        try Shell.check("mkdir -p \(Shell.quote(tree))/sub && echo keep > \(Shell.quote(tree))/outside && " +
                        "truncate -s 32M \(Shell.quote(image)) && mke2fs -F -q -t ext4 -d \(Shell.quote(tree)) \(Shell.quote(image))")
        let r = try ImageMountBinary.run(["tar-in", "-a", image, archive, "/sub"])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        for member in ["../x", "ok/../../y", "up/through-symlink", "dotdot/z", "hard"] {
            #expect(lines.filter { $0.hasPrefix("imagemount: tar-in: \(member): ") }.count == 1, "\(member): \(r.stderr)")
        }
        #expect(lines.last == "imagemount: 5 members were not extracted (see above); the others were", "\(r.stderr)")
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        let found = try TarFixtures.withKernelMount(image) { root throws in
            try Shell.check("cd \(Shell.quote(root)) && find . -path ./lost+found -prune -o -print | sort")
        }
        #expect(found == """
            .
            ./outside
            ./sub
            ./sub/dotdot
            ./sub/etc
            ./sub/etc/passwd
            ./sub/fine
            ./sub/fine/inside
            ./sub/up

            """, "\(found)")
        try TarFixtures.withKernelMount(image) { root throws in
            #expect(try String(contentsOfFile: root + "/outside", encoding: .utf8) == "keep\n")
            #expect(try Shell.check("readlink \(Shell.quote(root + "/sub/up"))") == "/\n")
        }
    }

    /// vfat holds files and directories: those come in; a symlink is refused with the driver's reason.
    @Test func vfatTakesWhatItHolds() throws {
        let scratch = try TempDir("tar-in-vfat")
        let tree = scratch.file("t")
        try Shell.check("mkdir -p \(Shell.quote(tree))/dir/deeper && echo one > \(Shell.quote(tree))/dir/one.txt && " +
                        "seq 1 100000 > \(Shell.quote(tree))/dir/deeper/seq.txt && ln -s one.txt \(Shell.quote(tree))/dir/link && " +
                        "tar -cf \(Shell.quote(scratch.file("v.tar"))) -C \(Shell.quote(tree)) dir")
        let image = scratch.file("v.img")
        try Shell.check("truncate -s 32M \(Shell.quote(image)) && mkfs.vfat -F 16 \(Shell.quote(image)) >/dev/null")
        let r = try ImageMountBinary.run(["tar-in", "-a", image, scratch.file("v.tar"), "/"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("imagemount: tar-in: dir/link: symlink"), "\(r.stderr)")
        #expect(try Shell.check("mtype -i \(Shell.quote(image)) ::/dir/one.txt") == "one\n")
        let seq = try Shell.check("mtype -i \(Shell.quote(image)) ::/dir/deeper/seq.txt")
        #expect(seq == (try String(contentsOfFile: tree + "/dir/deeper/seq.txt", encoding: .utf8)))
        let fsck = try Shell.run("fsck.fat -n \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    @Test func readOnlyDriverIsOneLine() throws {
        let scratch = try TempDir("tar-in-iso")
        try Shell.check("mkdir \(Shell.quote(scratch.file("d"))) && echo hi > \(Shell.quote(scratch.file("d/a.txt"))) && " +
                        "genisoimage -quiet -R -o \(Shell.quote(scratch.file("x.iso"))) \(Shell.quote(scratch.file("d"))) && " +
                        "tar -cf \(Shell.quote(scratch.file("x.tar"))) -C \(Shell.quote(scratch.file("d"))) .")
        let before = try Shell.check("sha256sum < \(Shell.quote(scratch.file("x.iso")))")
        let r = try ImageMountBinary.run(["tar-in", "-a", scratch.file("x.iso"), scratch.file("x.tar"), "/"])
        #expect(r.status == 1 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(try Shell.check("sha256sum < \(Shell.quote(scratch.file("x.iso")))") == before)
    }

    @Test func fromStandardInputCompressed() throws {
        let scratch = try TempDir("tar-in-stdin")
        try Shell.check("mkdir -p \(Shell.quote(scratch.file("d/x"))) && echo hello > \(Shell.quote(scratch.file("d/x/h.txt")))")
        let gz = try Shell.run("tar -czf - -C \(Shell.quote(scratch.file("d"))) .").stdout
        let image = scratch.file("s.img")
        try Self.blankExt4(image, size: "16M")
        let r = try ImageMountBinary.run(["tar-in", "-a", image, "-z", "-", "/"], stdin: gz)
        #expect(r.status == 0, "\(r.stderr)")
        let auto = try ImageMountBinary.run(["tar-in", "-a", image, "-", "/"], stdin: gz)
        #expect(auto.status == 0, "\(auto.stderr)")
        try TarFixtures.withKernelMount(image) { root throws in
            #expect(try String(contentsOfFile: root + "/x/h.txt", encoding: .utf8) == "hello\n")
        }
        let garbage = try ImageMountBinary.run(["tar-in", "-a", image, "-", "/"], stdin: Data(repeating: 0x41, count: 5000))
        #expect(garbage.status == 1 && garbage.stderr.split(separator: "\n").count == 1, "\(garbage.stderr)")
        #expect(try Shell.run("e2fsck -fn \(Shell.quote(image)) 2>&1").status == 0)
    }
}
