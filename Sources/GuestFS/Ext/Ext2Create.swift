import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage

/// create, mknod, mkdir, symlink and link (fuse2fs's op_create, op_mknod, op_mkdir,
/// op_symlink, op_link): a new inode or a new name, linked into a directory whose directory
/// cache entry is then dropped.
extension Ext2Filesystem {
    /// Creates a regular file, device node, FIFO or socket named `name` in `dir`; returns its inode.
    package func createNode(in dir: UInt32, name: [UInt8], _ spec: NewInode) throws -> UInt32 {
        let type = spec.mode & Ext2Inode.typeMask
        guard [Ext2Inode.typeRegular, Ext2Inode.typeCharDevice, Ext2Inode.typeBlockDevice,
               Ext2Inode.typeFIFO, Ext2Inode.typeSocket].contains(type) else {
            throw error(.invalidArgument, "create \(String(decoding: name, as: UTF8.self))", "not a file, device, FIFO or socket mode")
        }
        return try withWriteHandle { fs in
            let parent = try checkNewName(dir, name, fs: fs)
            var child: ext2_ino_t = 0
            try check(ext2fs_new_inode(fs, dir, Int32(spec.mode), nil, &child), "new inode")
            var raw = ext2_inode_large()
            raw.i_mode = spec.mode
            raw.i_links_count = 1
            raw.setOwner(uid: spec.uid, gid: Self.inheritedGroup(parent, spec.gid))
            if type == Ext2Inode.typeCharDevice || type == Ext2Inode.typeBlockDevice {
                // Old 8:8 encoding in i_block[0] when it fits, else the new one in i_block[1]
                // (the kernel's ext4_write_inode, old_valid_dev/new_encode_dev).
                if spec.rdevMajor < 256 && spec.rdevMinor < 256 {
                    raw.i_block.0 = spec.rdevMajor << 8 | spec.rdevMinor
                } else {
                    raw.i_block.1 = (spec.rdevMinor & 0xff) | (spec.rdevMajor << 8) | ((spec.rdevMinor & ~0xff) << 12)
                }
            } else if type == Ext2Inode.typeRegular && ext2fs_has_feature_extents(cext2fs_super(fs)) != 0 {
                // An empty extent tree in i_block, as a new ext4 file has.
                var handle: ext2_extent_handle_t?
                let rc = withUnsafeMutablePointer(to: &raw) { p in
                    p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { ext2fs_extent_open2(fs, child, $0, &handle) }
                }
                try check(rc, "extent tree", inode: child)
                ext2fs_extent_free(handle)
            }
            // The name first: ext2fs_new_inode only chose a free inode, so a directory that
            // cannot grow leaves nothing behind. Then the inode, then its bitmap bit and counts.
            try link(dir, name, child, fileType: Self.direntType(spec.mode), fs: fs)
            do {
                try writeNewInode(child, &raw, fs: fs)
            } catch {
                _ = withCName(name) { ext2fs_unlink(fs, dir, $0, child, 0) }
                directoryCache.update(dir, name: name, entry: nil)
                throw error
            }
            ext2fs_inode_alloc_stats2(fs, child, 1, 0)
            return child
        }
    }

    /// Creates directory `name` in `dir` (with `.` and `..`, the parent's link count raised).
    package func makeDirectory(in dir: UInt32, name: [UInt8], _ spec: NewInode) throws -> UInt32 {
        try withWriteHandle { fs in
            let parent = try checkNewName(dir, name, fs: fs)
            // The inode is chosen first, so its number is known without searching the parent.
            var child: ext2_ino_t = 0
            try check(ext2fs_new_inode(fs, dir, Int32(Ext2Inode.typeDirectory | 0o755), nil, &child), "new inode")
            // Made without a name (ext2fs_mkdir would search the parent twice), then linked.
            try check(ext2fs_mkdir(fs, dir, child, nil), "mkdir", inode: dir)
            do {
                try link(dir, name, child, fileType: Int32(DirEntry.typeDirectory), fs: fs)
            } catch {
                try? undoNewDirectory(child, parent: dir, fs: fs)
                throw error
            }
            let inodeSize = superblock.inodeSize
            try updateInode(child, fs: fs) { raw in
                // A set-group-ID parent passes its group and the bit itself on to directories.
                raw.i_mode = Ext2Inode.typeDirectory | (spec.mode & 0o7777) | (parent.mode & Self.setGID)
                raw.setOwner(uid: spec.uid, gid: Self.inheritedGroup(parent, spec.gid))
                let now = Timestamp.now
                raw.setAccessTime(now, inodeSize: inodeSize)
                raw.touchModification(inodeSize: inodeSize, now: now)
                raw.setCreationTime(now, inodeSize: inodeSize)
            }
            try touchDirectory(dir, fs: fs)
            return child
        }
    }

    /// Creates symlink `name` in `dir` pointing at `target` (fast symlink when it fits in the inode).
    package func makeSymlink(in dir: UInt32, name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) throws -> UInt32 {
        guard !target.isEmpty, !target.contains(0) else { throw error(.noSuchFileOrDirectory, "symlink", "empty target") }
        guard target.count < Int(min(blockSize, 4096)) else { throw error(.fileNameTooLong, "symlink", "target too long") }
        return try withWriteHandle { fs in
            let parent = try checkNewName(dir, name, fs: fs)
            var child: ext2_ino_t = 0
            try check(ext2fs_new_inode(fs, dir, Int32(Ext2Inode.typeSymlink | 0o777), nil, &child), "new inode")
            try check(withCName(target) { ext2fs_symlink(fs, dir, child, nil, $0) }, "symlink", inode: dir)
            do {
                try link(dir, name, child, fileType: Int32(DirEntry.typeSymlink), fs: fs)
            } catch {
                try? undoNewInode(child, fs: fs)
                throw error
            }
            let inodeSize = superblock.inodeSize
            try updateInode(child, fs: fs) { raw in
                raw.setOwner(uid: uid, gid: Self.inheritedGroup(parent, gid))
                let now = Timestamp.now
                raw.setAccessTime(now, inodeSize: inodeSize)
                raw.touchModification(inodeSize: inodeSize, now: now)
                raw.setCreationTime(now, inodeSize: inodeSize)
            }
            try touchDirectory(dir, fs: fs)
            return child
        }
    }

    /// Adds the name `name` in `dir` for the existing inode `target` (a hard link).
    package func link(_ target: UInt32, into dir: UInt32, name: [UInt8]) throws {
        try withWriteHandle { fs in
            _ = try checkNewName(dir, name, fs: fs)
            let (raw, inode) = try readInode(target, fs: fs)
            guard !inode.isDirectory else { throw error(.notPermitted, "link", "hard links to directories are not allowed") }
            guard inode.links > 0 else { throw error(.noSuchFileOrDirectory, "link", "inode \(target) has been removed") }
            guard inode.links < 65_000 else { throw error(.tooManyLinks, "link", "inode \(target) has too many links") }
            try link(dir, name, target, fileType: Self.direntType(raw.i_mode), fs: fs)
            let inodeSize = superblock.inodeSize
            try updateInode(target, fs: fs) { raw in
                raw.i_links_count += 1
                raw.touchChange(inodeSize: inodeSize)
            }
        }
    }

    // MARK: Helpers shared with rename

    /// EEXIST, ENAMETOOLONG, ENOTDIR and EINVAL checks before a name is added to `dir`;
    /// returns the directory's inode.
    @discardableResult
    func checkNewName(_ dir: UInt32, _ name: [UInt8], fs: ext2_filsys) throws -> Ext2Inode {
        try Self.validate(name)
        let (_, parent) = try readInode(dir, fs: fs)
        guard parent.isDirectory else { throw error(.notDirectory, "inode \(dir)", "not a directory") }
        guard parent.links > 0 else { throw error(.noSuchFileOrDirectory, "inode \(dir)", "directory has been removed") }
        if try lookupLocked(dir, name, fs: fs) != nil {
            throw error(.fileExists, String(decoding: name, as: UTF8.self), "already exists")
        }
        return parent
    }

    static let setGID: UInt16 = 0o2000

    /// New inodes in a set-group-ID directory take the directory's group (ext4's inode_init_owner).
    static func inheritedGroup(_ parent: Ext2Inode, _ gid: UInt32) -> UInt32 {
        parent.mode & setGID != 0 ? parent.gid : gid
    }

    static func validate(_ name: [UInt8]) throws {
        guard name.count <= 255 else {
            throw ImageError(structure: "name", reason: "longer than 255 bytes", errno: .fileNameTooLong)
        }
        guard !name.isEmpty, !name.contains(0), !name.contains(0x2F), name != [0x2E], name != [0x2E, 0x2E] else {
            throw ImageError(structure: "name", reason: "not a valid file name", errno: .invalidArgument)
        }
    }

    /// Looks a name up under the lock, through the directory cache.
    func lookupLocked(_ dir: UInt32, _ name: [UInt8], fs: ext2_filsys) throws -> DirEntry? {
        try cachedDirectory(dir, fs: fs).byName[name]
    }

    /// ext2fs_link, growing the directory by a block when it is full; then the directory's
    /// mtime and ctime. Drops the directory's cache entry whatever happens.
    func link(_ dir: UInt32, _ name: [UInt8], _ child: UInt32, fileType: Int32, fs: ext2_filsys) throws {
        // Constant time when the last block has room, or after growing the directory by one.
        var appended = try appendEntry(dir, name, child, fileType: fileType, fs: fs)
        if appended == nil, try appendApplies(dir, fs: fs) {
            let expand = ext2fs_expand_dir(fs, dir)
            if expand != 0 { directoryCache.invalidate(dir) }
            try check(expand, "expand directory", inode: dir)
            appended = try appendEntry(dir, name, child, fileType: fileType, fs: fs)
        }
        if let block = appended {
            added(dir, name, child, fileType, block: block)
            try touchDirectory(dir, fs: fs)
            return
        }
        var rc = withCName(name) { ext2fs_link(fs, dir, $0, child, fileType) }
        if rc == EXT2_ET_DIR_NO_SPACE {
            let expand = ext2fs_expand_dir(fs, dir)
            if expand != 0 { directoryCache.invalidate(dir) }
            try check(expand, "expand directory", inode: dir)
            rc = withCName(name) { ext2fs_link(fs, dir, $0, child, fileType) }
        }
        guard rc == 0 else {
            directoryCache.invalidate(dir)
            try check(rc, "link", inode: dir)
            return
        }
        added(dir, name, child, fileType)
        try touchDirectory(dir, fs: fs)
    }

    /// Whether `appendEntry` can serve `dir` at all (a linear, block-based directory).
    func appendApplies(_ dir: UInt32, fs: ext2_filsys) throws -> Bool {
        let (raw, inode) = try readInode(dir, fs: fs)
        return inode.isDirectory && !inode.hasInlineData && raw.i_flags & UInt32(EXT2_INDEX_FL) == 0 &&
            inode.size > 0 && inode.size % UInt64(blockSize) == 0
    }

    /// Records a new entry in the directory cache (see Ext2DirectoryCache.update).
    func added(_ dir: UInt32, _ name: [UInt8], _ child: UInt32, _ fileType: Int32, block: UInt32? = nil) {
        let type = superblock.incompatFeatures & Ext2Superblock.incompatFileType != 0 ? UInt8(fileType) : DirEntry.typeUnknown
        directoryCache.update(dir, name: name, entry: DirEntry(name: name, inode: child, fileType: type), block: block)
    }

    /// Frees an inode made by ext2fs_mkdir/ext2fs_symlink that could not be linked.
    func undoNewInode(_ number: UInt32, fs: ext2_filsys) throws {
        try updateInode(number, fs: fs) { $0.i_links_count = 0 }
        try freeInode(number, fs: fs)
    }

    /// As `undoNewInode` for a directory, whose `..` had raised the parent's link count.
    func undoNewDirectory(_ number: UInt32, parent: UInt32, fs: ext2_filsys) throws {
        try updateInode(parent, fs: fs) { raw in if raw.i_links_count > 2 { raw.i_links_count -= 1 } }
        try undoNewInode(number, fs: fs)
    }

    /// mtime and ctime of a directory whose entries changed.
    func touchDirectory(_ dir: UInt32, fs: ext2_filsys) throws {
        let inodeSize = superblock.inodeSize
        try updateInode(dir, fs: fs) { $0.touchModification(inodeSize: inodeSize) }
    }

    /// ext2fs_write_new_inode (which sets i_extra_isize and default times), then the full
    /// inode again with nanosecond times.
    func writeNewInode(_ number: UInt32, _ raw: inout ext2_inode_large, fs: ext2_filsys) throws {
        let rc = withUnsafeMutablePointer(to: &raw) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { ext2fs_write_new_inode(fs, number, $0) }
        }
        try check(rc, "new inode", inode: number)
        (raw, _) = try readInode(number, fs: fs)
        let now = Timestamp.now
        let inodeSize = superblock.inodeSize
        raw.setAccessTime(now, inodeSize: inodeSize)
        raw.touchModification(inodeSize: inodeSize, now: now)
        raw.setCreationTime(now, inodeSize: inodeSize)
        try writeInode(number, raw, fs: fs)
    }

    /// The EXT2_FT_* directory entry type for an i_mode, as libext2fs's link calls take it.
    static func direntType(_ mode: UInt16) -> Int32 { Int32(DirEntry.fileType(forMode: mode)) }

    func error(_ errno: Errno, _ structure: String, _ reason: String) -> ImageError {
        ImageError(path: device.displayName, structure: structure, reason: reason, errno: errno)
    }
}

/// Calls `body` with `name` as a NUL-terminated C string.
func withCName<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    try (name + [0]).withUnsafeBufferPointer { buffer in
        try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}
