import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// ext images made by mke2fs (and debugfs), then damaged: the kernel's answers, typed errors,
/// no trap, no endless read, nothing written.
@Suite struct Ext2HostileTests {
    /// An 8 MiB filesystem from a small tree: /file (5000 bytes), /dir/inner.
    static func image(_ type: String, options: String = "", name: String = "fs.img") throws -> HostileImage {
        try HostileImage(name) { p in
            let src = p + ".src"
            try Shell.check("mkdir -p \(Shell.quote(src))/dir && head -c 5000 /dev/urandom > \(Shell.quote(src))/file && echo inner > \(Shell.quote(src))/dir/inner && setfattr -n user.note -v hello \(Shell.quote(src))/file 2>/dev/null; mke2fs -q -F -t \(type) \(options) -d \(Shell.quote(src)) \(Shell.quote(p)) 8M")
        }
    }

    static func open(_ image: HostileImage) throws -> (Guest, MountTree) { try GuestWalk.open(image.path) }

    @Test func reservedBlocksNear2to64LeaveNothingAvailable() throws {
        let image = try Self.image("ext4", options: "-O 64bit,^metadata_csum")
        // s_r_blocks_count_lo at superblock +0x08, s_r_blocks_count_hi at +0x154 (ext4 super.rst).
        try image.patchLE(1024 + 0x08, 0xFFFF_FFFF, bytes: 4)
        try image.patchLE(1024 + 0x154, 0xFFFF_FFFF, bytes: 4)
        let before = image.sha256
        let (_, tree) = try Self.open(image)
        let usage = tree.ext(of: tree.root).usage()
        #expect(usage.availableBlocks == 0)
        #expect(usage.freeBlocks > 0 && usage.totalBlocks > 0)
        #expect(image.sha256 == before)
    }

    @Test(arguments: [("ext4", "extents"), ("ext2", "block map")])
    func sizeNear2to63IsRefusedNamingTheInode(type: String, label: String) throws {
        let image = try Self.image(type)
        let number = try #require(UInt32(try Shell.check("debugfs -R 'stat /file' \(Shell.quote(image.path)) 2>/dev/null | sed -n 's/^Inode: *\\([0-9]*\\).*/\\1/p'").trimmingCharacters(in: .whitespacesAndNewlines)))
        for size in ["0x7FFFFFFFFFFFFFF0", "0xFFFFFFFFFFFFFFFF", "0x100000000000"] {
            try image.debugfs(["sif /file size \(size)"])
            let (_, tree) = try Self.open(image)
            let fs = tree.ext(of: tree.root)
            let e = expectImageError(["inode \(number)", "i_size", "exceeds the largest file"]) { _ = try fs.openFile(number) }
            #expect(e?.errno.rawValue == 117, "\(label): EFSCORRUPTED (EUCLEAN)")
        }
        // The largest size the kernel allows still opens (ext4_max_size / ext4_max_bitmap_size).
        let (_, tree) = try Self.open(image)
        let limit = tree.ext(of: tree.root).superblock.maxFileSize(extents: type == "ext4")
        try image.debugfs(["sif /file size \(limit)"])
        let (_, again) = try Self.open(image)
        #expect(try again.ext(of: again.root).openFile(number).size == limit)
    }

    @Test func maxFileSizeMatchesTheKernelFormulas() throws {
        func sb(_ log: UInt32, huge: Bool) throws -> Ext2Superblock {
            let image = try Self.image("ext4", options: "-b \(1024 << log) \(huge ? "" : "-O ^huge_file")")
            return try Self.open(image).1.ext(of: try Self.open(image).1.root).superblock
        }
        // ext4_max_size: (2^32 - 1) blocks; ext4_max_bitmap_size for 4 KiB blocks with huge_file
        // is 4402345721856 bytes (the kernel's s_bitmap_maxbytes on a default ext4).
        let four = try sb(2, huge: true)
        #expect(four.maxFileSize(extents: true) == ((UInt64(1) << 32) - 1) << 12)
        #expect(four.maxFileSize(extents: false) == 4_402_345_721_856)
        let one = try sb(0, huge: false)
        #expect(one.maxFileSize(extents: true) == (((UInt64(1) << 32) - 1) >> 1) << 10)
        #expect(one.maxFileSize(extents: false) == 16_843_020 << 10)
    }

    @Test func inlineDataFlagWithoutTheFeatureIsRefused() throws {
        let image = try Self.image("ext4", options: "-O ^inline_data")
        // EXT4_INLINE_DATA_FL (0x10000000) added to the extents flag (0x80000) of /file.
        try image.debugfs(["sif /file flags 0x10080000"])
        let (_, tree) = try Self.open(image)
        let node = try tree.resolve("/file")
        let e = expectImageError(["inode \(node.inode)", "inline-data flag", "no inline_data feature"]) {
            _ = try tree.ext(of: node).openFile(node.inode)
        }
        #expect(e?.errno.rawValue == 117)
    }

    @Test(arguments: ["ext2", "ext3"])
    func noExtAttrFeatureMeansNoXattrs(type: String) throws {
        let image = try Self.image(type, options: "-O ^ext_attr")
        let (_, tree) = try Self.open(image)
        let node = try tree.resolve("/file")
        let fs = tree.ext(of: node)
        #expect(try fs.xattrs(node.inode).isEmpty)
        #expect(try fs.xattr(node.inode, name: "user.note") == nil)
        #expect(try fs.xattrs(Ext2Filesystem.rootInode).isEmpty)
        // Writable: setting one is ENOTSUP (no ext_attr to store it), removing one is ENODATA.
        let (_, rw) = try GuestWalk.open(image.path, writable: true)
        let rwfs = rw.ext(of: rw.root)
        #expect(expectImageError(["ext_attr"]) { try rwfs.setXattr(UInt32(node.inode), name: "user.x", value: [1]) }?.errno == .notSupported)
        #expect(expectImageError(["no such attribute"]) { try rwfs.removeXattr(UInt32(node.inode), name: "user.x") }?.errno == .noData)
        try rwfs.close()
    }

    @Test func directoryHardLinkLoopIsDetectedOnThePath() throws {
        let image = try Self.image("ext4")
        // /dir/up names the root directory's inode: a loop / → dir → up → / ...
        try image.debugfs(["ln / /dir/up"])
        let (_, tree) = try Self.open(image)
        var path = DirectoryWalkPath(top: tree.root)
        let dir = try tree.resolve("/dir")
        let entered = path.enter(dir)
        #expect(entered)
        let up = try #require(try tree.entries(dir, rejected: { _ in }).first { $0.name == Array("up".utf8) })
        #expect(up.node == tree.root)
        let loops = !path.enter(up.node)
        #expect(loops)
        #expect(tree.loopWarning(path: "/dir/up", node: up.node).contains("inode 2"))
        path.leave(dir)
        let again = path.enter(dir)
        #expect(again)
    }

    /// /big holds 40 entries with 100-byte names: with 1 KiB blocks, about 8 per block.
    static func bigDirectory(_ options: String) throws -> HostileImage {
        try HostileImage("dir.img") { p in
            let src = p + ".src"
            try Shell.check("mkdir -p \(Shell.quote(src))/big && cd \(Shell.quote(src))/big && for i in $(seq 10 49); do echo $i > $(printf 'n%s%0100d' $i 0 | cut -c1-100); done && mke2fs -q -F -t ext4 -b 1024 \(options) -d \(Shell.quote(src)) \(Shell.quote(p)) 8M")
        }
    }

    /// The names the kernel's ext4 lists in /big of `image` (read-only loop mount, noload).
    static func kernelNames(_ image: HostileImage) throws -> Set<String> {
        let mount = try KernelMount(image: image.path)
        defer { mount.close() }
        return Set(try Shell.check("ls -f \(Shell.quote(mount.path))/big").split(separator: "\n").map(String.init).filter { $0 != "." && $0 != ".." })
    }

    /// Linear and htree directories without checksums lose the rest of the bad block; with
    /// metadata_csum the block's checksum fails and the kernel skips it whole, as we do.
    @Test(arguments: ["-O ^metadata_csum,^dir_index", "-O ^metadata_csum", ""])
    func badEntryLosesOnlyTheRestOfItsBlock(options: String) throws {
        let image = try Self.bigDirectory(options)
        let (_, tree0) = try Self.open(image)
        let all = Set(try tree0.entries(try tree0.resolve("/big"), rejected: { _ in }).map { String(decoding: $0.name, as: UTF8.self) })
        #expect(all.count == 40)
        let number = try tree0.resolve("/big").inode
        // Logical block 1 of /big, from debugfs; its third entry's rec_len (bytes 4-5 of the
        // entry, little-endian) becomes 5: not a multiple of 4, below 12.
        let physical = try #require(UInt64(try Shell.check("debugfs -R 'bmap /big 1' \(Shell.quote(image.path)) 2>/dev/null").trimmingCharacters(in: .whitespacesAndNewlines)))
        let blockStart = physical * 1024
        let bytes = try RawImage(path: image.path, writable: false).readBytes(at: blockStart, count: 1024)
        var offset = 0
        for _ in 0..<2 { offset += Int(bytes[offset + 4]) | Int(bytes[offset + 5]) << 8 }
        try image.patchLE(blockStart + UInt64(offset) + 4, 5, bytes: 2)
        let before = image.sha256

        let logged = Locked<[String]>([])
        let (_, tree) = try Self.open(image)
        tree.ext(of: tree.root).setDamageLog { line in logged.withValue { $0.append(line) } }
        let listed = Set(try tree.entries(try tree.resolve("/big"), rejected: { _ in }).map { String(decoding: $0.name, as: UTF8.self) })
        #expect(listed.count >= 40 - 10 && listed.count < 40, "\(listed.count) of 40 listed; \(logged.value)")
        #expect(listed.isSubset(of: all))
        #expect(listed == (try Self.kernelNames(image)), "the kernel lists the same names")
        #expect(logged.value.count == 1 && logged.value.first.map { $0.contains("directory inode \(number), block 1") && $0.contains(options.isEmpty ? "checksum" : "rec_len 5") } == true,
                "\(logged.value)")
        #expect(image.sha256 == before)
    }

    /// The primary superblock zeroed (bytes 1024-2047): read-only opens use the first backup,
    /// where e2fsck finds it (block 8193 with 1 KiB blocks, 32768 with 4 KiB), with a warning;
    /// writable opens are refused; the image is not written.
    @Test(arguments: [(1024, "16M", UInt64(8193)), (4096, "160M", UInt64(32768))])
    func damagedPrimarySuperblockFallsBackToABackup(blockSize: Int, size: String, backupBlock: UInt64) throws {
        let image = try HostileImage("fs.img") { p in
            let src = p + ".src"
            try Shell.check("mkdir -p \(Shell.quote(src))/dir && echo inner > \(Shell.quote(src))/dir/inner && mke2fs -q -F -t ext4 -b \(blockSize) -d \(Shell.quote(src)) \(Shell.quote(p)) \(size)")
        }
        try image.patch(1024, [UInt8](repeating: 0, count: 1024))
        let before = image.sha256
        let fs = try Ext2Filesystem(device: RawImage(path: image.path, writable: false))
        #expect(fs.warnings.contains { $0.contains("backup superblock at block \(backupBlock)") && $0.contains("primary superblock is damaged") },
                "\(fs.warnings)")
        // As `-m /dev/sda` opens it (the probe, like blkid, sees no filesystem there).
        let guest = try Guest(drives: [DriveSpec(path: image.path, format: .raw)])
        let tree = try MountTree(entries: [(try guest.device(named: "/dev/sda"), "/")], writable: false)
        let node = try tree.resolve("/dir/inner")
        #expect(try GuestWalk.readAll(tree.ext(of: node).openFile(node.inode)) == Array("inner\n".utf8))
        expectImageError(["bad magic"]) { _ = try Ext2Filesystem(device: RawImage(path: image.path, writable: true), writable: true) }
        try fs.close()
        #expect(image.sha256 == before)
    }
}
