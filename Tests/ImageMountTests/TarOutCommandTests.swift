import Foundation
import Testing
import TestSupport

/// `imagemount tar-out`: the archive GNU tar extracts is the guest tree as the kernel's own
/// ext4 shows it (names, modes, owners, ns mtimes, xattrs, ACLs, hard links, symlinks,
/// devices, holes), compressed when asked, to a file or to standard output.
@Suite(.serialized) struct TarOutCommandTests {
    static let fixture = Result { () throws -> (TempDir, String) in
        let scratch = try TempDir("tar-out")
        let built = try TarFixtures.ext4Image(scratch)
        return (scratch, built.image)
    }

    @Test func gnuTarExtractsTheGuestTree() throws {
        let (_, image) = try Self.fixture.get()
        let work = try TempDir("tar-out-x")
        let archive = work.file("out.tar")
        let r = try ImageMountBinary.run(["tar-out", "-a", image, "--xattrs", "--acls", "/", archive])
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        try Shell.check("mkdir \(Shell.quote(work.file("x")))")
        // GNU tar restores only user.* xattrs unless told otherwise; trusted.* travels too.
        let x = try Shell.run("tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf \(Shell.quote(archive)) -C \(Shell.quote(work.file("x")))")
        // The one line GNU tar may say: the tree's Latin-1 name is not UTF-8, so its pax `path`
        // is marked `hdrcharset=BINARY` (POSIX), a keyword GNU tar ignores; the bytes are right.
        let complaints = x.stderr.split(separator: "\n").filter { !$0.contains("unknown extended header keyword 'hdrcharset'") }
        #expect(x.status == 0 && complaints.isEmpty, "GNU tar: \(x.stderr)")
        let expected = try TarFixtures.withKernelMount(image) { try TarFixtures.listing($0) }
        let extracted = try TarFixtures.listing(work.file("x"))
        #expect(extracted == expected)
        #expect(expected.contains("946684799987654321") && expected.contains("system.posix_acl_default"), "the fixture lost its ns times or ACLs")
        // Holes stay holes: 8 MiB with 14 bytes of data, 1 MiB of nothing, 4 bytes then 2 MiB of hole.
        #expect(try TarFixtures.allocated(work.file("x/data/sparse")) < 64 * 1024)
        #expect(try TarFixtures.allocated(work.file("x/data/all-hole")) == 0)
        #expect(try TarFixtures.allocated(work.file("x/data/tail-hole")) < 64 * 1024)
        // The sparse members are GNU sparse ones, not 8 MiB of zeros in the archive.
        #expect((try FileManager.default.attributesOfItem(atPath: archive)[.size] as? Int ?? .max) < 3 * 1024 * 1024)
        // Members are named as `tar -C DIR -cf - .` names them.
        let names = try Shell.check("tar -tf \(Shell.quote(archive)) | head -3").split(separator: "\n")
        #expect(names.first == "./" && names.dropFirst().allSatisfy { $0.hasPrefix("./") })
    }

    @Test func withoutOptionsNoXattrsOrACLs() throws {
        let (_, image) = try Self.fixture.get()
        let work = try TempDir("tar-out-plain")
        try ImageMountBinary.check(["tar-out", "-a", image, "/etc", work.file("etc.tar")])
        let listing = try Shell.check("tar --xattrs --acls -tvvf \(Shell.quote(work.file("etc.tar")))")
        #expect(!listing.contains("user.comment") && listing.contains("./hostname"), "\(listing)")
        try Shell.check("mkdir \(Shell.quote(work.file("x"))) && tar --xattrs --xattrs-include='*' -xpf \(Shell.quote(work.file("etc.tar"))) -C \(Shell.quote(work.file("x")))")
        let attrs = try Shell.run("getfattr -d -m - \(Shell.quote(work.file("x/hostname")))")
        #expect(attrs.text.isEmpty, "\(attrs.text)")
    }

    @Test(arguments: [(["-z"], "gzip -t"), (["--compress", "gzip"], "gzip -t"), (["--compress", "xz"], "xz -t"),
                      (["--compress", "bzip2"], "bzip2 -t"), (["--compress", "zstd"], "zstd -q -t")])
    func compressedOutputIsWhatTheToolReads(options: [String], check: String) throws {
        let (_, image) = try Self.fixture.get()
        let work = try TempDir("tar-out-z")
        let archive = work.file("out.tar.c")
        try ImageMountBinary.check(["tar-out", "-a", image] + options + ["/data", archive])
        try Shell.check("\(check) \(Shell.quote(archive))")
        let listed = try Shell.check("tar -tf \(Shell.quote(archive))")
        #expect(listed.contains("./seq\n") && listed.contains("./sparse\n"), "\(listed)")
    }

    @Test func toStandardOutput() throws {
        let (_, image) = try Self.fixture.get()
        let r = try ImageMountBinary.run(["tar-out", "-a", image, "/etc", "-"])
        #expect(r.status == 0, "\(r.stderr)")
        let work = try TempDir("tar-out-stdout")
        try r.stdout.write(to: URL(fileURLWithPath: work.file("s.tar")))
        #expect(r.stdout.count % 10240 == 0)
        let listed = try Shell.check("tar -tf \(Shell.quote(work.file("s.tar"))) | sort")
        #expect(listed == "./\n./hostname\n./secret\n./seq-link2\n", "\(listed)")
    }

    @Test func excludesAndErrors() throws {
        let (_, image) = try Self.fixture.get()
        let work = try TempDir("tar-out-ex")
        try ImageMountBinary.check(["tar-out", "-a", image, "--exclude", "*seq*", "--exclude", "./acl", "/", work.file("e.tar")])
        let listed = try Shell.check("tar -tf \(Shell.quote(work.file("e.tar")))")
        #expect(!listed.contains("seq") && !listed.contains("acl") && listed.contains("./etc/hostname"), "\(listed)")
        let notDir = try ImageMountBinary.run(["tar-out", "-a", image, "/etc/hostname", work.file("f.tar")])
        #expect(notDir.status == 1 && notDir.stderr == "imagemount: /etc/hostname: not a directory in the guest\n", "\(notDir.stderr)")
        let relative = try ImageMountBinary.run(["tar-out", "-a", image, "etc", work.file("g.tar")])
        #expect(relative.status == 1 && relative.stderr.contains("absolute"), "\(relative.stderr)")
        let lzop = try ImageMountBinary.run(["tar-out", "-a", image, "--compress", "lzop", "/", work.file("h.tar")])
        #expect(lzop.status == 1 && lzop.stderr.contains("lzop"), "\(lzop.stderr)")
    }

    /// --selinux: the security.selinux label travels (as SCHILY.xattr.security.selinux) only
    /// when asked, out and back in.
    @Test func selinuxLabelTravelsOnlyWhenAsked() throws {
        let work = try TempDir("tar-selinux")
        let label = "system_u:object_r:etc_t:s0"
        try Shell.check("mkdir -p \(Shell.quote(work.file("t"))) && echo x > \(Shell.quote(work.file("t/f"))) && " +
                        "setfattr -n security.selinux -v \(label) \(Shell.quote(work.file("t/f"))) && " +
                        "truncate -s 16M \(Shell.quote(work.file("s.img"))) && mke2fs -F -q -t ext4 -d \(Shell.quote(work.file("t"))) \(Shell.quote(work.file("s.img")))")
        try ImageMountBinary.check(["tar-out", "-a", work.file("s.img"), "/", work.file("plain.tar")])
        try ImageMountBinary.check(["tar-out", "-a", work.file("s.img"), "--selinux", "/", work.file("label.tar")])
        let plain = try Data(contentsOf: URL(fileURLWithPath: work.file("plain.tar")))
        let labelled = try Data(contentsOf: URL(fileURLWithPath: work.file("label.tar")))
        #expect(plain.range(of: Data("selinux".utf8)) == nil)
        #expect(labelled.range(of: Data("SCHILY.xattr.security.selinux=\(label)".utf8)) != nil)
        let target = work.file("in.img")
        try Shell.check("truncate -s 16M \(Shell.quote(target)) && mke2fs -F -q -t ext4 \(Shell.quote(target))")
        try ImageMountBinary.check(["tar-in", "-a", target, "--selinux", work.file("label.tar"), "/"])
        let got = try TarFixtures.withKernelMount(target) { root in
            try Shell.check("getfattr --absolute-names --only-values -n security.selinux \(Shell.quote(root + "/f"))")
        }
        #expect(got == label)
    }
}
