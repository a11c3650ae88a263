import GuestFSBlock
import GuestFSFilesystem
import CExt2fs


/// What `stat` needs of an inode, decoded once from the on-disk inode.
///
/// Layout: the ext4 disk layout, "Index Nodes" (Documentation/filesystems/ext4/inodes.rst),
/// including the large-inode fields past byte 128 guarded by `i_extra_isize`.
package struct Ext2Inode: Sendable {
    package let number: UInt32
    package let mode: UInt16
    package let uid: UInt32
    package let gid: UInt32
    package let size: UInt64
    package let links: UInt32
    /// 512-byte units, as st_blocks wants them.
    package let blocks512: UInt64
    package let atime: Timestamp
    package let mtime: Timestamp
    package let ctime: Timestamp
    package let crtime: Timestamp?
    package let flags: UInt32
    package let generation: UInt32
    /// Device number for character and block device inodes.
    package let rdevMajor: UInt32
    package let rdevMinor: UInt32
    /// The raw i_block words (fast symlink target, device numbers, extent root).
    let blockWords: [UInt32]

    // File types, the S_IFMT bits of i_mode (inodes.rst "i_mode").
    package static let typeMask: UInt16 = 0o170000
    package static let typeDirectory: UInt16 = 0o040000
    package static let typeRegular: UInt16 = 0o100000
    package static let typeSymlink: UInt16 = 0o120000
    package static let typeCharDevice: UInt16 = 0o020000
    package static let typeBlockDevice: UInt16 = 0o060000
    package static let typeFIFO: UInt16 = 0o010000
    package static let typeSocket: UInt16 = 0o140000

    // i_flags (inodes.rst "i_flags").
    static let flagInlineData: UInt32 = 0x1000_0000
    static let flagExtents: UInt32 = 0x0008_0000

    package var fileType: UInt16 { mode & Self.typeMask }
    package var isDirectory: Bool { fileType == Self.typeDirectory }
    package var isRegular: Bool { fileType == Self.typeRegular }
    package var isSymlink: Bool { fileType == Self.typeSymlink }
    package var permissions: UInt16 { mode & 0o7777 }
    package var hasInlineData: Bool { flags & Self.flagInlineData != 0 }
    package var usesExtents: Bool { flags & Self.flagExtents != 0 }

    init(number: UInt32, large l: ext2_inode_large, fs: ext2_filsys) {
        var copy = l
        let small = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: ext2_inode.self, capacity: 1) { $0.pointee }
        }
        var smallCopy = small
        self.number = number
        mode = l.i_mode
        uid = UInt32(l.i_uid) | UInt32(l.osd2.linux2.l_i_uid_high) << 16
        gid = UInt32(l.i_gid) | UInt32(l.osd2.linux2.l_i_gid_high) << 16
        size = UInt64(l.i_size) | UInt64(l.i_size_high) << 32
        links = UInt32(l.i_links_count)
        blocks512 = ext2fs_get_stat_i_blocks(fs, &smallCopy)
        flags = l.i_flags
        generation = l.i_generation
        // An extra field exists only when i_extra_isize reaches past it (inodes.rst, "Inode Size").
        let extra = Int(l.i_extra_isize)
        func has(_ offset: Int) -> Bool { 128 + extra >= offset + 4 }
        ctime = Self.time(l.i_ctime, extra: has(0x84) ? l.i_ctime_extra : nil)
        mtime = Self.time(l.i_mtime, extra: has(0x88) ? l.i_mtime_extra : nil)
        atime = Self.time(l.i_atime, extra: has(0x8C) ? l.i_atime_extra : nil)
        crtime = has(0x90) ? Self.time(l.i_crtime, extra: has(0x94) ? l.i_crtime_extra : nil) : nil
        blockWords = withUnsafeBytes(of: l.i_block) { Array($0.bindMemory(to: UInt32.self)) }
        // Device numbers: old 8:8 encoding in i_block[0], else the new one in i_block[1]
        // (the same decoding the kernel's ext4_iget and fuse2fs use).
        if blockWords[0] != 0 {
            rdevMajor = (blockWords[0] >> 8) & 0xff
            rdevMinor = blockWords[0] & 0xff
        } else {
            let dev = blockWords[1]
            rdevMajor = (dev & 0xfff00) >> 8
            rdevMinor = (dev & 0xff) | ((dev >> 12) & 0xfff00)
        }
    }

    /// Seconds are signed 32-bit; the two low bits of the extra word extend the epoch and the
    /// rest hold nanoseconds (inodes.rst, "Inode Timestamps").
    static func time(_ seconds: UInt32, extra: UInt32?) -> Timestamp {
        var s = Int64(Int32(bitPattern: seconds))
        var ns: Int32 = 0
        if let extra {
            s += Int64(extra & 3) << 32
            ns = Int32(min(extra >> 2, 999_999_999))
        }
        return Timestamp(seconds: s, nanoseconds: ns)
    }
}

extension Ext2Filesystem {
    /// Reads and decodes inode `number`.
    package func inode(_ number: UInt32) throws -> Ext2Inode {
        try withHandle { fs in try readInode(number, fs: fs).decoded }
    }

    /// Reads an inode under the lock; returns the raw large inode and its decoding.
    func readInode(_ number: UInt32, fs: ext2_filsys) throws -> (raw: ext2_inode_large, decoded: Ext2Inode) {
        guard number >= 1, UInt64(number) <= superblock.inodesCount else {
            throw ImageError(path: device.displayName, structure: "inode \(number)",
                             reason: "inode number out of range (1...\(superblock.inodesCount))", errno: .ioError)
        }
        readAheadInodeTable(for: number, fs: fs)
        var large = ext2_inode_large()
        let rc = withUnsafeMutablePointer(to: &large) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                ext2fs_read_inode2(fs, number, $0, Int32(MemoryLayout<ext2_inode_large>.size), 0)
            }
        }
        try check(rc, "inode", inode: number)
        return (large, Ext2Inode(number: number, large: large, fs: fs))
    }
}
