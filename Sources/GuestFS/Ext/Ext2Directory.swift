import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

/// One directory entry. Names are bytes: ext4 names need not be UTF-8.
package struct DirEntry: Sendable, Hashable {
    package let name: [UInt8]
    package let inode: UInt32
    /// EXT2_FT_* from the entry (0 when the filesystem has no filetype feature).
    package let fileType: UInt8

    package var nameString: String { String(decoding: name, as: UTF8.self) }

    // Directory entry file types (ext4 disk layout, "Linear (Classic) Directories").
    package static let typeUnknown: UInt8 = 0
    package static let typeRegular: UInt8 = 1
    package static let typeDirectory: UInt8 = 2
    package static let typeCharDevice: UInt8 = 3
    package static let typeBlockDevice: UInt8 = 4
    package static let typeFIFO: UInt8 = 5
    package static let typeSocket: UInt8 = 6
    package static let typeSymlink: UInt8 = 7

    /// EXT2_FT_* ↔ the S_IFMT bits of i_mode, the one table both directions use.
    static let typesByMode: [(fileType: UInt8, mode: UInt16)] = [
        (typeRegular, Ext2Inode.typeRegular), (typeDirectory, Ext2Inode.typeDirectory),
        (typeCharDevice, Ext2Inode.typeCharDevice), (typeBlockDevice, Ext2Inode.typeBlockDevice),
        (typeFIFO, Ext2Inode.typeFIFO), (typeSocket, Ext2Inode.typeSocket), (typeSymlink, Ext2Inode.typeSymlink),
    ]

    /// The directory entry type for an i_mode (typeUnknown for anything else).
    package static func fileType(forMode mode: UInt16) -> UInt8 {
        typesByMode.first { $0.mode == mode & Ext2Inode.typeMask }?.fileType ?? typeUnknown
    }

    /// The S_IFMT bits for a directory entry type, or 0 when the entry does not say (typeUnknown).
    package static func modeBits(forFileType fileType: UInt8) -> UInt16 {
        typesByMode.first { $0.fileType == fileType }?.mode ?? 0
    }
}

extension Ext2Filesystem {
    /// The entries of directory `dir`, without `.` and `..`, in on-disk order.
    ///
    /// Served from the directory cache when present; otherwise read with ext2fs_dir_iterate2,
    /// which walks linear, htree (as linear leaves) and inline-data directories alike.
    /// (DIRENT_FLAG_INCLUDE_INLINE_DATA is internal to libext2fs 1.47: it means "the buffer
    /// already holds inline data" and must not be passed here.)
    package func directoryEntries(_ dir: UInt32) throws -> [DirEntry] {
        if let cached = directoryCache.entries(of: dir) { return cached.list }
        return try withHandle { fs in try cachedDirectory(dir, fs: fs).list }
    }

    /// The inode `name` names in directory `dir`, or nil when there is no such entry.
    package func lookup(_ dir: UInt32, _ name: [UInt8]) throws -> DirEntry? {
        if let cached = directoryCache.entries(of: dir) { return cached.byName[name] }
        return try withHandle { fs in try cachedDirectory(dir, fs: fs).byName[name] }
    }

    /// The directory from the cache, or read and cached, under the lock: a listing read before
    /// a writer's change must not be cached after it.
    func cachedDirectory(_ dir: UInt32, fs: ext2_filsys) throws -> Ext2DirectoryCache.Index {
        if let cached = directoryCache.entries(of: dir) { return cached }
        let (list, blocks) = try readDirectoryWithBlocks(dir, fs: fs)
        return directoryCache.insert(dir, list, blocks: blocks)
    }

    /// Reads a whole directory under the lock. Bounded: a directory whose entries would exceed
    /// `maxDirectoryEntries` is reported as damaged rather than filling memory.
    func readDirectory(_ dir: UInt32, fs: ext2_filsys) throws -> [DirEntry] {
        try readDirectoryWithBlocks(dir, fs: fs).entries
    }

    /// Also returns, for a block-based directory, the logical block each name is in (writers
    /// use it to remove an entry without searching; see Ext2Directory+Append.swift).
    func readDirectoryWithBlocks(_ dir: UInt32, fs: ext2_filsys) throws -> (entries: [DirEntry], blocks: [[UInt8]: UInt32]?) {
        let (raw, inode) = try readInode(dir, fs: fs)
        guard inode.isDirectory else {
            throw ImageError(path: device.displayName, structure: "inode \(dir)",
                             reason: "not a directory", errno: .notDirectory)
        }
        final class Collector {
            var entries: [DirEntry] = []
            var overflow = false
            /// Logical block of the entry being visited: every block starts at offset 0, and
            /// with DIRENT_FLAG_INCLUDE_EMPTY even a block of removed entries is visited.
            var block = -1
            var blocks: [[UInt8]: UInt32] = [:]
            var wantsBlocks = false
        }
        let withBlocks = !inode.hasInlineData
        // Only writers use the blocks (to remove an entry); read-only, they are not collected.
        let collectBlocks = withBlocks && isWritable
        let collector = Collector()
        collector.wantsBlocks = collectBlocks
        let rc = withExtendedLifetime(collector) {
            ext2fs_dir_iterate2(fs, dir, withBlocks ? Int32(DIRENT_FLAG_INCLUDE_EMPTY) : 0, nil, { _, kind, dirent, offset, _, _, priv in
                guard let dirent, let priv else { return DIRENT_ABORT }
                let collector = Unmanaged<Collector>.fromOpaque(priv).takeUnretainedValue()
                if offset == 0 { collector.block += 1 }
                if kind == DIRENT_DOT_FILE || kind == DIRENT_DOT_DOT_FILE { return 0 }
                let length = Int(ext2fs_dirent_name_len(dirent))
                guard dirent.pointee.inode != 0, length > 0 else { return 0 }
                if collector.entries.count >= Ext2Filesystem.maxDirectoryEntries {
                    collector.overflow = true
                    return DIRENT_ABORT
                }
                let name = withUnsafeBytes(of: &dirent.pointee.name) { raw in
                    Array(raw.prefix(min(length, raw.count)))
                }
                // "." and ".." found outside their usual slots are still not real children.
                if name == [0x2E] || name == [0x2E, 0x2E] { return 0 }
                collector.entries.append(DirEntry(name: name, inode: dirent.pointee.inode,
                                                  fileType: UInt8(ext2fs_dirent_file_type(dirent))))
                if collector.wantsBlocks { collector.blocks[name] = UInt32(max(collector.block, 0)) }
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        }
        if withBlocks, Self.isDirectoryDamage(rc) {
            // One bad block must not cost the whole directory (Ext2Directory+Salvage.swift).
            let salvaged = try salvageDirectory(dir, raw: raw, inode: inode, fs: fs)
            return (salvaged.entries, salvaged.blocks)
        }
        try check(rc, "directory", inode: dir)
        if collector.overflow {
            throw ImageError(path: device.displayName, structure: "directory inode \(dir)",
                             reason: "more than \(Ext2Filesystem.maxDirectoryEntries) entries; directory looks damaged",
                             errno: .ioError)
        }
        return (collector.entries, collectBlocks ? collector.blocks : nil)
    }

    /// A hard cap on entries in one directory: ext4's own limit with large_dir is far above any
    /// real guest, and a damaged directory must not make us allocate without bound.
    static let maxDirectoryEntries = 10_000_000
}
