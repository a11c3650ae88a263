import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage
import Synchronization

/// unlink and rmdir (fuse2fs's op_unlink, op_rmdir, remove_inode), and the release of inodes
/// whose last name went away while they were still in use.
extension Ext2Filesystem {
    /// Removes the name `name` (not a directory) from `dir`; frees the inode with its last link,
    /// unless a user still holds it (see `inodeInUse`), in which case it is freed later.
    package func unlink(in dir: UInt32, name: [UInt8]) throws {
        try withWriteHandle { fs in
            let entry = try existingEntry(dir, name, fs: fs)
            let (_, inode) = try readInode(entry.inode, fs: fs)
            guard !inode.isDirectory else { throw error(.isDirectory, String(decoding: name, as: UTF8.self), "is a directory") }
            try removeName(dir, name, entry.inode, fs: fs)
            try dropLink(entry.inode, fs: fs)
        }
    }

    /// Removes the empty directory `name` from `dir` (ENOTEMPTY otherwise).
    package func removeDirectory(in dir: UInt32, name: [UInt8]) throws {
        try withWriteHandle { fs in
            let entry = try existingEntry(dir, name, fs: fs)
            let (_, inode) = try readInode(entry.inode, fs: fs)
            guard inode.isDirectory else { throw error(.notDirectory, String(decoding: name, as: UTF8.self), "not a directory") }
            guard try readDirectory(entry.inode, fs: fs).isEmpty else {
                throw error(.directoryNotEmpty, String(decoding: name, as: UTF8.self), "directory not empty")
            }
            try removeName(dir, name, entry.inode, fs: fs)
            try removeDirectoryInode(entry.inode, parent: dir, fs: fs)
        }
    }

    /// Called by the user that held inode `number` (the FUSE server, when the kernel forgets
    /// it) once it no longer does: an inode left without names is freed now. A failure is
    /// thrown (the caller reports it) and the inode stays an orphan, so close tries again.
    package func releaseInode(_ number: UInt32) throws {
        guard isWritable else { return }
        try withHandle { fs in
            guard writeState.orphans.contains(number) else { return }
            try freeInode(number, fs: fs)
            writeState.orphans.remove(number)
        }
    }

    /// Set by the FUSE server: whether the kernel still holds inode `number`. Called under the
    /// filesystem lock; must not call back into this filesystem.
    package func setInodeInUse(_ check: @escaping @Sendable (UInt32) -> Bool) {
        let box = InUseCheck(check)
        inodeInUse.withLock { $0 = box }
    }

    // MARK: Shared with rename

    func existingEntry(_ dir: UInt32, _ name: [UInt8], fs: ext2_filsys) throws -> DirEntry {
        try Self.validate(name)
        guard let entry = try lookupLocked(dir, name, fs: fs) else {
            throw error(.noSuchFileOrDirectory, String(decoding: name, as: UTF8.self), "no such file or directory")
        }
        return entry
    }

    /// ext2fs_unlink of exactly this (name, inode) pair, then the directory's times.
    func removeName(_ dir: UInt32, _ name: [UInt8], _ child: UInt32, fs: ext2_filsys) throws {
        // Straight to the block the entry is in when the cache knows it; else libext2fs searches.
        if let block = directoryCache.entries(of: dir)?.blocks[name],
           try removeEntry(dir, name, child, logical: block, fs: fs) {
            directoryCache.update(dir, name: name, entry: nil)
            try touchDirectory(dir, fs: fs)
            return
        }
        let rc = withCName(name) { ext2fs_unlink(fs, dir, $0, child, 0) }
        if rc == 0 { directoryCache.update(dir, name: name, entry: nil) } else { directoryCache.invalidate(dir) }
        try check(rc, "unlink", inode: dir)
        try touchDirectory(dir, fs: fs)
    }

    /// One name fewer for a non-directory: ctime, and the inode freed (or kept as an orphan
    /// while in use) when it was the last.
    func dropLink(_ number: UInt32, fs: ext2_filsys) throws {
        let inodeSize = superblock.inodeSize
        let left = try updateInode(number, fs: fs) { raw -> UInt16 in
            if raw.i_links_count > 0 { raw.i_links_count -= 1 }
            raw.touchChange(inodeSize: inodeSize)
            return raw.i_links_count
        }
        if left == 0 { try releaseOrKeep(number, fs: fs) }
    }

    /// A directory's own name is gone: its `.` goes with it, and its `..` no longer counts as a
    /// link of the parent (kept at 1 when dir_nlink has stopped counting).
    func removeDirectoryInode(_ number: UInt32, parent: UInt32, fs: ext2_filsys) throws {
        let inodeSize = superblock.inodeSize
        try updateInode(number, fs: fs) { raw in
            raw.i_links_count = 0
            raw.touchChange(inodeSize: inodeSize)
        }
        try updateInode(parent, fs: fs) { raw in
            if raw.i_links_count > 2 { raw.i_links_count -= 1 }
            raw.touchChange(inodeSize: inodeSize)
        }
        directoryCache.invalidate(number)
        try releaseOrKeep(number, fs: fs)
    }

    private func releaseOrKeep(_ number: UInt32, fs: ext2_filsys) throws {
        let inUse = inodeInUse.withLock { $0 }
        if let inUse, inUse.check(number) {
            writeState.orphans.insert(number)
        } else {
            try freeInode(number, fs: fs)
        }
    }

    /// Frees an inode with no links: its xattr block, its blocks, its bitmap bit
    /// (fuse2fs's remove_inode; the kernel's ext4_evict_inode).
    func freeInode(_ number: UInt32, fs: ext2_filsys) throws {
        var (raw, inode) = try readInode(number, fs: fs)
        guard raw.i_links_count == 0, raw.i_dtime == 0 else { return }
        try withUnsafeMutablePointer(to: &raw) { p in
            try check(ext2fs_free_ext_attr(fs, number, p), "xattr block", inode: number)
            try p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { small in
                if ext2fs_inode_has_valid_blocks2(fs, small) != 0 {
                    try check(ext2fs_punch(fs, number, small, nil, 0, ~0), "free blocks", inode: number)
                }
            }
        }
        raw = try readInode(number, fs: fs).raw
        raw.i_dtime = UInt32(truncatingIfNeeded: Timestamp.now.seconds)
        raw.i_size = 0
        raw.i_size_high = 0
        try writeInode(number, raw, fs: fs)
        ext2fs_inode_alloc_stats2(fs, number, -1, inode.isDirectory ? 1 : 0)
        bumpDataVersion(number)
    }

    /// Frees every orphan (at close: nobody holds anything any more).
    func freeOrphansLocked(_ fs: ext2_filsys) throws {
        for number in writeState.orphans.sorted() { try freeInode(number, fs: fs) }
        writeState.orphans = []
    }
}
