import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount copy-out` reproduces the source tree: contents (diff -r), metadata, hardlinks, holes.
@Suite struct CopyOutCommandTests {
    @Test(arguments: ["ext4", "ext2-1k", "ext4-inline", "ext4@qcow2", "ext2-1k@qcow2-zlib"])
    func wholeTreeMatchesTheSource(variant: String) throws {
        let parts = variant.split(separator: "@").map(String.init)
        let v = try #require(Fixtures.extVariants.first { $0.name == parts[0] })
        var image = try Fixtures.image(v.name, type: v.type, options: v.options)
        if parts.count > 1 { image = try Fixtures.qcow2(image, options: parts[1] == "qcow2-zlib" ? "-c" : "") }
        let out = try TempDir()
        let result = try ImageMountBinary.run(["copy-out", "-a", image, "/", out.path])
        #expect(result.status == 0, "\(result.stderr)")
        let copied = out.path + "/root"
        // Contents and names: diff -r, with lost+found (made by mke2fs) taken away first.
        try Shell.check("rmdir \(Shell.quote(copied))/lost+found")
        // diff reports special files as differences whatever they are; their metadata is compared below.
        let diff = try Shell.run("diff -r --no-dereference \(Shell.quote(Fixtures.tree.root)) \(Shell.quote(copied)) | " +
                                 "grep -v -E 'is a (fifo|character special file|block special file) while file'")
        #expect(diff.text.isEmpty, "\(diff.text)\(diff.stderr)")
        // Metadata: every entry's mode, owner, size, link count, mtime and symlink target.
        let host = HostTree.walk(Fixtures.tree.root), ours = HostTree.walk(copied)
        #expect(Set(host.keys) == Set(ours.keys))
        for (path, facts) in host where !path.isEmpty {
            var theirs = ours[path]
            if facts.mode & 0o170000 == 0o040000 { theirs?.size = 0 }
            #expect(theirs == facts, "\(String(decoding: path, as: UTF8.self))")
        }
        // Hard links are one inode on the host too.
        #expect(inode(copied + "/data/one") == inode(copied + "/data/one-hardlink"))
        #expect(inode(copied + "/data/one") == inode(copied + "/modes/one-third-link"))
        // Holes: 12 100 bytes of data in a 5 MiB file must not become 5 MiB on the host.
        let blocks = try Shell.check("stat -c %b \(Shell.quote(copied + "/" + Fixtures.tree.sparseFile))")
        #expect((Int(blocks.trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max) * 512 < 256 * 1024)
        // Extended attributes.
        let xattr = try Shell.check("getfattr --absolute-names -h -n user.comment --only-values \(Shell.quote(copied + "/etc/hostname"))")
        #expect(xattr == "hello xattr")
    }

    /// Files are created with their final mode where that is exact (CopyOut.copyRegular): the
    /// modes must still be the guest's whatever the umask, and under a target whose default
    /// ACL would otherwise decide the new files' modes.
    @Test(arguments: ["022", "077", "000"], [false, true])
    func modesAreTheGuestsWhateverTheUmaskAndDefaultACL(umask: String, defaultACL: Bool) throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let out = try TempDir()
        if defaultACL { try Shell.check("setfacl -d -m u::rwx,g::---,o::--- \(Shell.quote(out.path))") }
        let binary = try ImageMountBinary.path()
        let result = try Shell.run("umask \(umask) && \(Shell.quote(binary)) copy-out -a \(Shell.quote(image)) / \(Shell.quote(out.path))")
        #expect(result.status == 0, "\(result.stderr)")
        let host = HostTree.walk(Fixtures.tree.root), ours = HostTree.walk(out.path + "/root")
        #expect(host.count > 10 && Set(host.keys).isSubset(of: Set(ours.keys)))
        for (path, facts) in host where !path.isEmpty {
            #expect(ours[path]?.mode == facts.mode, "\(String(decoding: path, as: UTF8.self)) (umask \(umask), default ACL \(defaultACL))")
        }
    }

    /// chown is left out where a new file already has the guest's owner (CopyOut.copyRegular):
    /// under a set-group-ID target of another group, new files would take that group, so the
    /// owners must still be the guest's.
    @Test func ownersAreTheGuestsUnderASetGroupIDTarget() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let out = try TempDir()
        try Shell.check("chgrp 65534 \(Shell.quote(out.path)) && chmod 2775 \(Shell.quote(out.path))")
        let result = try ImageMountBinary.run(["copy-out", "-a", image, "/", out.path])
        #expect(result.status == 0, "\(result.stderr)")
        let host = HostTree.walk(Fixtures.tree.root), ours = HostTree.walk(out.path + "/root")
        #expect(host.values.contains { $0.uid == 0 && $0.gid == 0 && $0.mode & 0o170000 == 0o100000 })
        for (path, facts) in host where !path.isEmpty {
            let theirs = ours[path]
            #expect(theirs?.uid == facts.uid && theirs?.gid == facts.gid, "\(String(decoding: path, as: UTF8.self))")
        }
    }

    @Test func nanosecondTimesSurvive() throws {
        let dir = try TempDir()
        let image = dir.file("ns.img")
        try Shell.check("cp --sparse=always \(Shell.quote(try Fixtures.image("ext4", type: "ext4"))) \(Shell.quote(image))")
        try Shell.check("debugfs -w -R 'sif /etc/hostname mtime_extra 0x1d6f3454' \(Shell.quote(image)) 2>&1")
        try Shell.check("debugfs -w -R 'sif /etc/hostname atime_extra 0x00000400' \(Shell.quote(image)) 2>&1")
        try Shell.check("mkdir \(Shell.quote(dir.file("out")))")
        let result = try ImageMountBinary.run(["copy-out", "-a", image, "/etc/hostname", dir.file("out")])
        #expect(result.status == 0, "\(result.stderr)")
        let times = try Shell.check("stat -c '%.9Y %.9X' \(Shell.quote(dir.file("out/hostname")))")
        let parts = times.split(separator: " ").map { String($0.split(separator: ".").last ?? "") }
        #expect(parts.first == String(format: "%09d", 0x1d6f3454 >> 2))
        #expect(parts.last?.trimmingCharacters(in: .whitespacesAndNewlines) == String(format: "%09d", 0x400 >> 2))
    }

    @Test func symlinkPathIsCopiedAsALink() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let out = try TempDir()
        let result = try ImageMountBinary.run(["copy-out", "-a", image, "/abs-link", "/dangling", out.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Shell.check("readlink \(Shell.quote(out.file("abs-link")))") == "/etc/hostname\n")
        #expect(try Shell.check("readlink \(Shell.quote(out.file("dangling")))") == "nowhere\n")
    }

    @Test func refusesToOverwriteOrWriteIntoAMissingDirectory() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let out = try TempDir()
        let missing = try ImageMountBinary.run(["copy-out", "-a", image, "/etc", out.file("nope")])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope") && missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")
        #expect(try ImageMountBinary.run(["copy-out", "-a", image, "/etc", out.path]).status == 0)
        let again = try ImageMountBinary.run(["copy-out", "-a", image, "/etc", out.path])
        #expect(again.status == 1 && again.stderr.contains("already exists"), "\(again.stderr)")
    }

    func inode(_ path: String) -> UInt64 {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }
}

extension CopyOutCommandTests {
    /// -m DEV[:MOUNTPOINT], as virt-copy-out passes it to guestfish: the named filesystem is the tree.
    @Test func mountOptionChoosesTheFilesystem() throws {
        let disk = try DiskFixtures.mbr()
        let host = try TempDir("imagemount-copy-out-m")
        try ImageMountBinary.check(["copy-out", "-a", disk.path, "-m", "/dev/sda5", "/etc/hostname", host.path])
        #expect(try String(contentsOfFile: host.file("hostname"), encoding: .utf8) == "boot-on-sda5\n")
        let other = try TempDir("imagemount-copy-out-m2")
        try ImageMountBinary.check(["copy-out", "-a", disk.path, "-m", "/dev/sda1", "-m", "/dev/sda5:/data/deep", "/data/deep/etc/hostname", other.path])
        #expect(try String(contentsOfFile: other.file("hostname"), encoding: .utf8) == "boot-on-sda5\n")
    }
}
