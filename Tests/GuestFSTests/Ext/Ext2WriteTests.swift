import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import SystemPackage
import Testing
import TestSupport

/// The write operations of `Ext2Filesystem` on fresh filesystems of every kind, checked with
/// reads back, `e2fsck -fn` and the kernel's ext4 driver (read-only loop mount).
@Suite struct Ext2WriteTests {
    static let variants: [(name: String, options: String)] = [
        ("ext4", "-t ext4 -I 256"),
        ("ext2-1k", "-t ext2 -b 1024 -I 128"),
        ("ext3", "-t ext3"),
        ("ext4-inline", "-t ext4 -O inline_data"),
        ("ext4-nocsum-32bit", "-t ext4 -O ^metadata_csum,^64bit"),
    ]

    /// A fresh filesystem of `size` in `dir`, opened writable.
    static func fresh(_ variant: String, in dir: TempDir, size: String = "32M") throws -> (path: String, fs: Ext2Filesystem) {
        let options = try #require(variants.first { $0.name == variant }).options
        let path = dir.file("fs.img")
        try Shell.check("truncate -s \(size) \(Shell.quote(path)) && mke2fs -q -F \(options) \(Shell.quote(path))")
        return (path, try Ext2Filesystem(device: RawImage(path: path, writable: true), writable: true))
    }

    /// `e2fsck -fn` must find nothing: exit 0.
    static func expectClean(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try Shell.run("e2fsck -fn \(Shell.quote(path)) 2>&1")
        #expect(r.status == 0, "e2fsck -fn: \(r.text)", sourceLocation: sourceLocation)
    }

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
    static let root = Ext2Filesystem.rootInode
    static func spec(_ mode: UInt16) -> NewInode { NewInode(mode: mode, uid: 1000, gid: 100) }

    func read(_ fs: Ext2Filesystem, _ ino: UInt32) throws -> [UInt8] {
        let file = try fs.openFile(ino)
        var out = [UInt8](repeating: 0, count: Int(file.size))
        let n = try out.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        return Array(out.prefix(n))
    }

    func write(_ fs: Ext2Filesystem, _ ino: UInt32, _ data: [UInt8], at offset: UInt64 = 0) throws {
        let n = try data.withUnsafeBytes { try fs.write(ino, at: offset, $0) }
        #expect(n == data.count)
    }

    func errno(_ body: () throws -> Void) -> Errno? {
        do { try body(); return nil } catch let e as ImageError { return e.errno } catch { return .ioError }
    }

    @Test(arguments: variants.map(\.name))
    func everyOperationLeavesACleanFilesystem(variant: String) throws {
        let dir = try TempDir()
        let (path, fs) = try Self.fresh(variant, in: dir)
        let r = Self.root
        // Files, data, sparse writes, an open file noticing later writes.
        let a = try fs.createNode(in: r, name: Self.bytes("a.txt"), Self.spec(0o100644))
        let reader = try fs.openFile(a)
        try write(fs, a, Self.bytes("hello\n"))
        #expect(try read(fs, a) == Self.bytes("hello\n"))
        var check = [UInt8](repeating: 0, count: 6)
        #expect(try check.withUnsafeMutableBytes { try reader.read(into: $0, at: 0) } == 6)
        #expect(check == Self.bytes("hello\n"))
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let b = try fs.createNode(in: r, name: Self.bytes("big"), Self.spec(0o100600))
        try write(fs, b, big)
        try write(fs, b, [1, 2, 3], at: 1_000_000)
        var expected = big + [UInt8](repeating: 0, count: 1_000_000 - big.count) + [1, 2, 3]
        #expect(try read(fs, b) == expected)
        // Truncate down (tail of the block zeroed) and up again.
        try fs.truncate(b, to: 5000)
        try fs.truncate(b, to: 9000)
        expected = Array(big.prefix(5000)) + [UInt8](repeating: 0, count: 4000)
        #expect(try read(fs, b) == expected)
        // Punch a hole and fallocate.
        try fs.punchHole(b, at: 100, length: 5000)
        for i in 100..<5100 { expected[i] = 0 }
        #expect(try read(fs, b) == expected)
        try fs.allocate(b, at: 9000, length: 70_000, keepSize: false)
        expected += [UInt8](repeating: 0, count: 70_000)
        #expect(try read(fs, b) == expected)
        try write(fs, b, [9, 9], at: 20_000)
        expected[20_000] = 9; expected[20_001] = 9
        #expect(try read(fs, b) == expected)

        // Directories, symlinks, hard links, special files.
        let d = try fs.makeDirectory(in: r, name: Self.bytes("dir"), Self.spec(0o40755))
        let sub = try fs.makeDirectory(in: d, name: Self.bytes("sub"), Self.spec(0o40700))
        #expect(try fs.inode(d).links == 3)
        let short = try fs.makeSymlink(in: d, name: Self.bytes("short"), target: Self.bytes("../a.txt"), uid: 0, gid: 0)
        #expect(try fs.readlink(short) == Self.bytes("../a.txt"))
        let longTarget = Self.bytes(String(repeating: "x/", count: 150))
        let long = try fs.makeSymlink(in: d, name: Self.bytes("long"), target: longTarget, uid: 0, gid: 0)
        #expect(try fs.readlink(long) == longTarget)
        try fs.link(a, into: d, name: Self.bytes("hard"))
        #expect(try fs.inode(a).links == 2)
        _ = try fs.createNode(in: d, name: Self.bytes("fifo"), Self.spec(0o010644))
        let dev = try fs.createNode(in: d, name: Self.bytes("dev"), NewInode(mode: 0o020600, uid: 0, gid: 0, rdevMajor: 300, rdevMinor: 70_000))
        #expect(try fs.inode(dev).rdevMajor == 300 && fs.inode(dev).rdevMinor == 70_000)

        // Renames: plain, over a file, across directories (a directory: `..` and link counts),
        // RENAME_NOREPLACE, RENAME_EXCHANGE.
        try fs.rename(from: r, Self.bytes("a.txt"), to: r, Self.bytes("b.txt"))
        #expect(try fs.lookup(r, Self.bytes("a.txt")) == nil)
        let c = try fs.createNode(in: r, name: Self.bytes("c"), Self.spec(0o100644))
        try write(fs, c, Self.bytes("cc"))
        try fs.rename(from: r, Self.bytes("c"), to: r, Self.bytes("b.txt"))
        #expect(try read(fs, try #require(try fs.lookup(r, Self.bytes("b.txt"))).inode) == Self.bytes("cc"))
        #expect(try fs.inode(a).links == 1)
        try fs.rename(from: d, Self.bytes("sub"), to: r, Self.bytes("moved"))
        #expect(try fs.inode(d).links == 2 && fs.inode(r).links == 5)
        #expect(errno { try fs.rename(from: r, Self.bytes("b.txt"), to: r, Self.bytes("big"), flags: .noReplace) } == .fileExists)
        try fs.rename(from: r, Self.bytes("moved"), to: d, Self.bytes("hard"), flags: .exchange)
        #expect(try fs.lookup(d, Self.bytes("hard"))?.inode == sub)
        #expect(try fs.lookup(r, Self.bytes("moved"))?.inode == a)
        #expect(try fs.inode(d).links == 3 && fs.inode(r).links == 4)
        try fs.rename(from: d, Self.bytes("hard"), to: r, Self.bytes("sub"))

        // Removal: files, an empty directory, a non-empty one refused.
        #expect(errno { try fs.removeDirectory(in: r, name: Self.bytes("dir")) } == .directoryNotEmpty)
        #expect(errno { try fs.unlink(in: r, name: Self.bytes("dir")) } == .isDirectory)
        try fs.unlink(in: r, name: Self.bytes("moved"))
        try fs.removeDirectory(in: r, name: Self.bytes("sub"))
        #expect(try fs.inode(r).links == 4)

        // Attributes and xattrs (a POSIX ACL in the xattr form getfacl uses).
        try fs.setAttributes(b, AttributeChanges(mode: 0o4750, uid: 12, gid: 34,
                                                 accessTime: .at(Timestamp(seconds: 1_000_000_000, nanoseconds: 5)),
                                                 modificationTime: .at(Timestamp(seconds: -5, nanoseconds: 999_999_999))))
        let info = try fs.inode(b)
        #expect(info.mode == 0o104750 && info.uid == 12 && info.gid == 34)
        if variant != "ext2-1k" {
            #expect(info.atime == Timestamp(seconds: 1_000_000_000, nanoseconds: 5))
            #expect(info.mtime == Timestamp(seconds: -5, nanoseconds: 999_999_999))
        }
        try fs.setXattr(b, name: "user.k", value: Self.bytes("v1"))
        #expect(errno { try fs.setXattr(b, name: "user.k", value: [], mode: .create) } == .fileExists)
        #expect(errno { try fs.setXattr(b, name: "user.none", value: [], mode: .replace) } == .noData)
        try fs.setXattr(b, name: "trusted.t", value: [0, 1, 2])
        // user::rw- user:1000:r-- group::r-- mask::r-- other::--- (ids of the *_OBJ entries are
        // unused; libext2fs gives 0). The mode's permission bits follow the ACL.
        let acl: [UInt8] = [2, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 2, 0, 4, 0, 0xe8, 3, 0, 0, 4, 0, 4, 0, 0, 0, 0, 0,
                            0x10, 0, 4, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0]
        try fs.setXattr(b, name: "system.posix_acl_access", value: acl)
        let aclBack = try fs.xattr(b, name: "system.posix_acl_access") ?? []
        #expect(aclBack == acl, "\(aclBack)")
        #expect(try fs.inode(b).mode == 0o104640)
        // An ACL that only restates the bits is not stored: the bits change.
        try fs.setXattr(b, name: "system.posix_acl_access", value: [2, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0, 0, 4, 0, 5, 0, 0, 0, 0, 0, 32, 0, 1, 0, 0, 0, 0, 0])
        #expect(try fs.inode(b).mode == 0o104751)
        #expect(try fs.xattr(b, name: "system.posix_acl_access") == nil)
        try fs.setXattr(b, name: "system.posix_acl_access", value: acl)
        try fs.removeXattr(b, name: "trusted.t")
        #expect(errno { try fs.removeXattr(b, name: "trusted.t") } == .noData)
        #expect(errno { try fs.setXattr(b, name: "bogus.x", value: []) } == .notSupported)
        #expect(try fs.xattrs(b).map(\.name).sorted() == ["system.posix_acl_access", "user.k"])

        // Names.
        #expect(errno { _ = try fs.createNode(in: r, name: [UInt8](repeating: 0x61, count: 256), Self.spec(0o100644)) } == .fileNameTooLong)
        #expect(errno { _ = try fs.createNode(in: r, name: Self.bytes("big"), Self.spec(0o100644)) } == .fileExists)
        #expect(errno { try fs.unlink(in: r, name: Self.bytes("nope")) } == .noSuchFileOrDirectory)
        #expect(errno { _ = try fs.createNode(in: b, name: Self.bytes("x"), Self.spec(0o100644)) } == .notDirectory)

        try fs.close()
        try Self.expectClean(path)
        let k = try KernelMount(image: path)
        defer { k.close() }
        #expect(try Shell.check("cat \(Shell.quote(k.path))/b.txt") == "cc")
        #expect(try Shell.check("readlink \(Shell.quote(k.path))/dir/short") == "../a.txt\n")
        #expect(try Shell.check("stat -c '%F %t:%T' \(Shell.quote(k.path))/dir/dev") == "character special file 12c:11170\n")
        let kernelBig = try Data(contentsOf: URL(fileURLWithPath: k.path + "/big"))
        #expect(Array(kernelBig) == expected)
        #expect(try Shell.check("getfattr -h -d -e text \(Shell.quote(k.path))/big 2>/dev/null").contains("user.k=\"v1\""))
    }

    @Test func unlinkedWhileInUseIsFreedOnRelease() throws {
        let dir = try TempDir()
        let (path, fs) = try Self.fresh("ext4", in: dir)
        fs.setInodeInUse { _ in true }
        let f = try fs.createNode(in: Self.root, name: Self.bytes("f"), Self.spec(0o100644))
        try write(fs, f, [UInt8](repeating: 7, count: 100_000))
        let freeBefore = fs.usage().freeBlocks
        try fs.unlink(in: Self.root, name: Self.bytes("f"))
        // Still readable by whoever holds it; its blocks are still taken.
        #expect(try read(fs, f).count == 100_000)
        #expect(fs.usage().freeBlocks == freeBefore)
        try fs.releaseInode(f)
        #expect(fs.usage().freeBlocks > freeBefore)
        let g = try fs.createNode(in: Self.root, name: Self.bytes("g"), Self.spec(0o100644))
        try write(fs, g, [1])
        try fs.unlink(in: Self.root, name: Self.bytes("g"))
        try fs.close()  // frees the orphan g
        try Self.expectClean(path)
    }

    /// fallocate into free space of one-block holes: the extent tree outgrows the inode and
    /// needs a block of its own. libext2fs counts the new blocks in the inode it was handed;
    /// that inode must be the one written back (re-reading it lost the count: i_blocks 48 for
    /// 30 blocks, e2fsck errors, and EOVERFLOW from the truncate after).
    @Test(arguments: ["ext4", "ext2-1k"])
    func fallocateIntoFragmentedSpaceCountsEveryBlock(variant: String) throws {
        let dir = try TempDir()
        let (path, fs) = try Self.fresh(variant, in: dir)
        let bs = fs.blockSize
        var fillers: [UInt32] = []
        for i in 0..<40 {
            let f = try fs.createNode(in: Self.root, name: Self.bytes("f\(i)"), Self.spec(0o100644))
            try write(fs, f, [UInt8](repeating: 1, count: bs))
            fillers.append(f)
        }
        for i in stride(from: 0, to: 40, by: 2) { try fs.unlink(in: Self.root, name: Self.bytes("f\(i)")) }
        let big = try fs.createNode(in: Self.root, name: Self.bytes("big"), Self.spec(0o100644))
        try fs.allocate(big, at: 0, length: UInt64(30 * bs), keepSize: false)
        let counted = try fs.inode(big).blocks512 * 512
        #expect(counted >= UInt64(30 * bs) && counted <= UInt64(34 * bs), "i_blocks covers \(counted) bytes")
        try fs.allocate(big, at: UInt64(30 * bs), length: 1 << 20, keepSize: true)
        try fs.truncate(big, to: UInt64(bs))
        try fs.punchHole(big, at: 0, length: UInt64(bs))
        try fs.unlink(in: Self.root, name: Self.bytes("big"))
        try fs.close()
        try Self.expectClean(path)
    }

    @Test(arguments: ["ext4", "ext2-1k"])
    func fillingTheFilesystemStopsCleanlyWithENOSPC(variant: String) throws {
        let dir = try TempDir()
        let (path, fs) = try Self.fresh(variant, in: dir, size: "8M")
        let chunk = [UInt8](repeating: 0xAB, count: 1 << 20)
        var files = 0
        var full = false
        let startFree = fs.usage().freeBlocks
        outer: while files < 100 {
            let f = try fs.createNode(in: Self.root, name: Self.bytes("f\(files)"), Self.spec(0o100644))
            files += 1
            var offset: UInt64 = 0
            for _ in 0..<3 {
                do {
                    let n = try chunk.withUnsafeBytes { try fs.write(f, at: offset, $0) }
                    offset += UInt64(n)
                    if n < chunk.count { full = true; break outer }
                } catch let e as ImageError where e.errno == .noSpace {
                    full = true
                    break outer
                }
            }
        }
        #expect(full)
        #expect(fs.usage().freeBlocks < startFree / 10)
        // Metadata still works when data is full: a name, a directory, a removal.
        _ = try fs.makeDirectory(in: Self.root, name: Self.bytes("still"), Self.spec(0o40755))
        try fs.unlink(in: Self.root, name: Self.bytes("f0"))
        try fs.close()
        try Self.expectClean(path)
    }

    @Test func readOnlyFilesystemRefusesWrites() throws {
        let dir = try TempDir()
        let path = dir.file("ro.img")
        try Shell.check("truncate -s 8M \(Shell.quote(path)) && mke2fs -q -F -t ext4 \(Shell.quote(path))")
        let before = try Shell.check("sha256sum \(Shell.quote(path))")
        let fs = try Ext2Filesystem(device: RawImage(path: path, writable: false))
        #expect(errno { _ = try fs.createNode(in: Self.root, name: Self.bytes("x"), Self.spec(0o100644)) } == .readOnlyFileSystem)
        #expect(errno { try fs.setAttributes(Self.root, AttributeChanges(mode: 0o700)) } == .readOnlyFileSystem)
        try fs.close()
        #expect(try Shell.check("sha256sum \(Shell.quote(path))") == before)
    }

    @Test func writableOpenWithoutChangesLeavesTheImageAlone() throws {
        let dir = try TempDir()
        let path = dir.file("rw.img")
        try Shell.check("truncate -s 8M \(Shell.quote(path)) && mke2fs -q -F -t ext4 \(Shell.quote(path))")
        let before = try Shell.check("sha256sum \(Shell.quote(path))")
        let fs = try Ext2Filesystem(device: RawImage(path: path, writable: true), writable: true)
        _ = try fs.directoryEntries(Self.root)
        try fs.close()
        #expect(try Shell.check("sha256sum \(Shell.quote(path))") == before)
    }
}
