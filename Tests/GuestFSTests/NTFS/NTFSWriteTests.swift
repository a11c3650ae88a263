import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSNTFS
import GuestFS
import Testing
import TestSupport

/// The NTFS driver's writes (WritableGuestFilesystem over libntfs-3g) on volumes mkntfs made,
/// read back by the real tools: ntfs-3g's own mount of the result, `ntfsfix -n`, `ntfsls`.
/// Then the rules ntfs-3g keeps before writing: an unchanged writable open writes nothing, a
/// hibernated volume opens read-only unless remove_hiberfile asks to delete hiberfil.sys.
@Suite(.serialized) struct NTFSWriteTests {
    static func sha256(_ path: String) throws -> String {
        try Shell.check("sha256sum \(Shell.quote(path))").split(separator: " ").first.map(String.init) ?? ""
    }

    static func open(_ path: String, writable: Bool = true, options: [String] = []) throws -> NTFSFilesystem {
        try NTFSFilesystem(device: try RawImage(path: path, writable: writable), writable: writable,
                           options: NTFSMountOptions(parsing: options))
    }

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func write(_ fs: NTFSFilesystem, _ node: UInt64, _ data: [UInt8], at offset: UInt64 = 0) throws -> Int {
        try data.withUnsafeBytes { try fs.write(node, at: offset, $0) }
    }

    static func read(_ fs: NTFSFilesystem, _ node: UInt64) throws -> [UInt8] {
        let file = try fs.openFile(node)
        var out = [UInt8](repeating: 0, count: Int(file.size))
        let n = try out.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        return Array(out.prefix(n))
    }

    static func errno(_ body: () throws -> Void) -> Int32? {
        do { try body(); return nil } catch let e as ImageError { return e.errno.rawValue } catch { return -1 }
    }

    static func spec(_ mode: UInt16) -> NewInode { NewInode(mode: mode, uid: 0, gid: 0) }

    @Test func unchangedWritableOpenWritesNothing() throws {
        let dir = try TempDir("ntfsw-unchanged")
        let image = try NTFSImages.volume(at: dir.file("v.img"), script: "echo hello > a.txt; mkdir d; setfattr -n user.s -v v a.txt")
        let before = try Self.sha256(image)
        let fs = try Self.open(image)
        #expect(fs.isWritable && fs.warnings.isEmpty, "\(fs.warnings)")
        let a = try #require(try fs.lookup(fs.rootNode, Self.bytes("a.txt")))
        #expect(try Self.read(fs, a) == Self.bytes("hello\n"))
        _ = try fs.entries(fs.rootNode)
        _ = try fs.xattrs(a)
        _ = try fs.usage()
        // What changes nothing writes nothing: chmod/chown (ignored, as ntfs-3g without
        // permissions), a refused removal, a refused xattr, a sync.
        try fs.setAttributes(a, AttributeChanges(mode: 0o600, uid: 1000, gid: 1000))
        #expect(Self.errno { try fs.removeXattr(a, name: "user.none") } == ENODATA)
        #expect(Self.errno { try fs.setXattr(a, name: "user.s", value: [1], mode: .create) } == EEXIST)
        #expect(Self.errno { try fs.setXattr(a, name: "trusted.x", value: [1], mode: .createOrReplace) } == EOPNOTSUPP)
        try fs.sync()
        try fs.close()
        #expect(try Self.sha256(image) == before)
    }

    @Test func writesReadBackByNtfs3g() throws {
        let dir = try TempDir("ntfsw-api")
        let image = try NTFSImages.volume(at: dir.file("v.img"), script: "echo old > keep.txt; mkdir full; echo x > full/inside")
        let fs = try Self.open(image)
        let root = fs.rootNode
        let freeBefore = try fs.usage().freeBlocks
        let d = try fs.makeDirectory(in: root, name: Self.bytes("dir"), Self.spec(0o40755))
        let f = try fs.createNode(in: d, name: Self.bytes("file.txt"), Self.spec(0o100644))
        #expect(try Self.write(fs, f, Self.bytes("hello world\n")) == 12)
        #expect(try Self.write(fs, f, Self.bytes("HELLO"), at: 0) == 5)
        let big = try fs.createNode(in: root, name: Self.bytes("big.bin"), Self.spec(0o100644))
        let pattern = (0 ..< 3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        #expect(try Self.write(fs, big, pattern) == pattern.count)
        #expect(try fs.usage().freeBlocks < freeBefore - 700, "statfs does not follow the writes")
        try fs.truncate(big, to: 1_000_000)
        let t = try fs.createNode(in: root, name: Self.bytes("grown"), Self.spec(0o100644))
        _ = try Self.write(fs, t, Self.bytes("abc"))
        try fs.setAttributes(t, AttributeChanges(size: 70_000, modificationTime: .at(Timestamp(seconds: 1_000_000_000, nanoseconds: 500))))
        #expect(try fs.attributes(t).mtime == Timestamp(seconds: 1_000_000_000, nanoseconds: 500))
        _ = try fs.makeSymlink(in: root, name: Self.bytes("link"), target: Self.bytes("dir/file.txt"), uid: 0, gid: 0)
        try fs.link(f, into: root, name: Self.bytes("hard.txt"))
        #expect(try fs.attributes(f).links == 2)
        _ = try fs.createNode(in: root, name: Self.bytes("fifo"), Self.spec(0o10644))
        _ = try fs.createNode(in: root, name: Self.bytes("chr"), NewInode(mode: 0o20644, uid: 0, gid: 0, rdevMajor: 1, rdevMinor: 3))
        try fs.setXattr(f, name: "user.stream", value: Self.bytes("stream value"), mode: .create)
        try fs.setXattr(f, name: "user.stream", value: Self.bytes("replaced"), mode: .replace)
        try fs.setXattr(f, name: "user.gone", value: [1, 2], mode: .createOrReplace)
        try fs.removeXattr(f, name: "user.gone")
        #expect(try fs.xattr(f, name: "user.stream") == Self.bytes("replaced"))
        #expect(try fs.xattr(f, name: "system.ntfs_attrib").map { $0[0] & 0x20 } == 0x20, "archive bit")
        // Renames: into another directory, over an existing file, NOREPLACE, EXCHANGE.
        let moved = try fs.createNode(in: root, name: Self.bytes("tomove"), Self.spec(0o100644))
        try fs.rename(from: root, Self.bytes("tomove"), to: d, Self.bytes("moved"), flags: [])
        #expect(try fs.lookup(d, Self.bytes("moved")) == moved && fs.lookup(root, Self.bytes("tomove")) == nil)
        let src = try fs.createNode(in: root, name: Self.bytes("src"), Self.spec(0o100644))
        _ = try Self.write(fs, src, Self.bytes("new"))
        #expect(Self.errno { try fs.rename(from: root, Self.bytes("src"), to: root, Self.bytes("keep.txt"), flags: .noReplace) } == EEXIST)
        #expect(Self.errno { try fs.rename(from: root, Self.bytes("src"), to: root, Self.bytes("keep.txt"), flags: .exchange) } == EINVAL)
        try fs.rename(from: root, Self.bytes("src"), to: root, Self.bytes("keep.txt"), flags: [])
        let full = try #require(try fs.lookup(root, Self.bytes("full")))
        #expect(Self.errno { try fs.removeDirectory(in: root, name: Self.bytes("full")) } == ENOTEMPTY)
        #expect(Self.errno { try fs.unlink(in: root, name: Self.bytes("full")) } == EISDIR)
        #expect(Self.errno { try fs.removeDirectory(in: root, name: Self.bytes("keep.txt")) } == ENOTDIR)
        #expect(Self.errno { _ = try fs.createNode(in: root, name: Self.bytes("keep.txt"), Self.spec(0o100644)) } == EEXIST)
        #expect(Self.errno { _ = try fs.createNode(in: root, name: Array(repeating: 0x61, count: 256), Self.spec(0o100644)) } == ENAMETOOLONG)
        #expect(Self.errno { try fs.unlink(in: 0, name: Self.bytes("$MFT")) } != nil)
        try fs.unlink(in: full, name: Self.bytes("inside"))
        try fs.removeDirectory(in: root, name: Self.bytes("full"))
        // A file unlinked while held lives on under a hidden name until it is released.
        let held = try fs.createNode(in: root, name: Self.bytes("held"), Self.spec(0o100644))
        _ = try Self.write(fs, held, Self.bytes("still here"))
        let inUse = Locked(true)
        fs.setNodeInUse { $0 == held && inUse.value }
        try fs.unlink(in: root, name: Self.bytes("held"))
        #expect(try fs.lookup(root, Self.bytes("held")) == nil)
        #expect(try Self.read(fs, held) == Self.bytes("still here"))
        #expect(try fs.attributes(held).links == 0)
        #expect(!(try fs.entries(root)).contains { String(decoding: $0.name, as: UTF8.self).hasPrefix(".ghost") })
        inUse.value = false
        try fs.releaseNode(held)
        #expect(throws: ImageError.self) { _ = try fs.attributes(held) }
        try fs.close()

        let fix = try Shell.run("ntfsfix -n \(Shell.quote(image)) 2>&1")
        #expect(fix.status == 0 && fix.text.contains("processed successfully"), "\(fix.text)")
        let ls = try Shell.check("ntfsls -f \(Shell.quote(image)) | LC_ALL=C sort")
        #expect(ls == "big.bin\nchr\ndir\nfifo\ngrown\nhard.txt\nkeep.txt\nlink\n", "\(ls)")
        let mnt = try TempDir("ntfsw-oracle")
        try NTFSImages.mountNtfs3g(image, at: mnt.path, options: "ro,streams_interface=xattr")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(mnt.path)) || fusermount -u -z \(Shell.quote(mnt.path))") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: mnt.file("dir/file.txt"))) == Data(Self.bytes("HELLO world\n")))
        #expect(try Data(contentsOf: URL(fileURLWithPath: mnt.file("big.bin"))) == Data(pattern.prefix(1_000_000)))
        #expect(try Data(contentsOf: URL(fileURLWithPath: mnt.file("grown"))) == Data(Self.bytes("abc") + [UInt8](repeating: 0, count: 69_997)))
        #expect(try Data(contentsOf: URL(fileURLWithPath: mnt.file("keep.txt"))) == Data(Self.bytes("new")))
        #expect(try Shell.check("stat -c '%F %h %s %Y %t:%T' \(Shell.quote(mnt.file("dir/file.txt"))) \(Shell.quote(mnt.file("link"))) \(Shell.quote(mnt.file("fifo"))) \(Shell.quote(mnt.file("chr"))) \(Shell.quote(mnt.file("grown")))")
                .split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
                == ["regular", "symbolic", "fifo", "character", "regular"])
        #expect(try Shell.check("stat -c '%h' \(Shell.quote(mnt.file("hard.txt")))") == "2\n")
        #expect(try Shell.check("stat -c '%Y' \(Shell.quote(mnt.file("grown")))") == "1000000000\n")
        #expect(try Shell.check("readlink \(Shell.quote(mnt.file("link")))") == "dir/file.txt\n")
        #expect(try Shell.check("stat -c '%t %T' \(Shell.quote(mnt.file("chr")))") == "1 3\n")
        #expect(try Shell.check("getfattr --absolute-names -d \(Shell.quote(mnt.file("dir/file.txt")))").contains("user.stream=\"replaced\""))
        #expect(try Shell.check("ls \(Shell.quote(mnt.file("dir")))") == "file.txt\nmoved\n")
    }

    @Test func fillingTheVolumeIsENOSPCAndFreesAgain() throws {
        let dir = try TempDir("ntfsw-full")
        let image = try NTFSImages.volume(at: dir.file("v.img"), megabytes: 16)
        let fs = try Self.open(image)
        let free = try fs.usage().freeBlocks
        let node = try fs.createNode(in: fs.rootNode, name: Self.bytes("fill"), Self.spec(0o100644))
        let chunk = [UInt8](repeating: 0xA5, count: 1 << 20)
        var written: UInt64 = 0
        var failure: Int32?
        for _ in 0 ..< 64 {
            do {
                let n = try Self.write(fs, node, chunk, at: written)
                written += UInt64(n)
                if n < chunk.count { continue }
            } catch let e as ImageError {
                failure = e.errno.rawValue
                break
            }
        }
        #expect(failure == ENOSPC, "wrote \(written) bytes")
        #expect(written > 8 << 20)
        try fs.unlink(in: fs.rootNode, name: Self.bytes("fill"))
        // Freed again, but for what the MFT may have grown by to hold the file's record.
        let after = try fs.usage().freeBlocks
        #expect(after <= free && after + 64 >= free, "\(after) free clusters, \(free) before")
        try fs.close()
        let fix = try Shell.run("ntfsfix -n \(Shell.quote(image)) 2>&1")
        #expect(fix.status == 0, "\(fix.text)")
    }

    static func hibernated(_ dir: TempDir) throws -> String {
        // A hibernation file as Windows leaves it: "hibr" at the start of hiberfil.sys
        // (libntfs-3g reads its first 4096 bytes, volume.c ntfs_volume_check_hiberfile).
        try NTFSImages.volume(at: dir.file("hiber.img"), script: """
            echo windows > a.txt
            { printf 'hibr'; head -c 8188 /dev/zero; } > hiberfil.sys
            """)
    }

    @Test func hibernatedVolumeOpensReadOnlyUnlessRemoveHiberfile() throws {
        let dir = try TempDir("ntfsw-hiber")
        let image = try Self.hibernated(dir)
        let before = try Self.sha256(image)
        let fs = try Self.open(image)
        #expect(!fs.isWritable)
        #expect(fs.warnings.count == 1 && fs.warnings[0].contains("Windows is hibernated") && fs.warnings[0].contains("remove_hiberfile"), "\(fs.warnings)")
        #expect(Self.errno { _ = try fs.createNode(in: fs.rootNode, name: Self.bytes("new"), Self.spec(0o100644)) } == EROFS)
        let a = try #require(try fs.lookup(fs.rootNode, Self.bytes("a.txt")))
        #expect(Self.errno { _ = try Self.write(fs, a, [1]) } == EROFS)
        #expect(try Self.read(fs, a) == Self.bytes("windows\n"))
        try fs.close()
        #expect(try Self.sha256(image) == before)
        // Through the registry, as -m DEV:MP:OPTS passes it.
        let guest = try Guest(drives: [DriveSpec(path: image)], writable: true)
        let opened = try FilesystemRegistry.open(try guest.device(named: "/dev/sda"), writable: true, options: ["remove_hiberfile"])
        let w = try #require(opened as? NTFSFilesystem)
        #expect(w.isWritable && w.warnings.isEmpty, "\(w.warnings)")
        #expect(try Self.sha256(image) == before, "written before the first change")
        _ = try w.createNode(in: w.rootNode, name: Self.bytes("new"), Self.spec(0o100644))
        #expect(try w.lookup(w.rootNode, Self.bytes("hiberfil.sys")) == nil)
        try w.close()
        let ls = try Shell.check("ntfsls -f \(Shell.quote(image)) | LC_ALL=C sort")
        #expect(ls == "a.txt\nnew\n", "\(ls)")
        let fix = try Shell.run("ntfsfix -n \(Shell.quote(image)) 2>&1")
        #expect(fix.status == 0, "\(fix.text)")
    }
}
