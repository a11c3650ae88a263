import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What writing needs besides libext2fs's handle, guarded by the filesystem lock.
struct WriteState {
    /// Bitmaps loaded and the superblock marked "not clean" on the device: done once, at the
    /// first change, so that a writable open that changes nothing writes nothing.
    var prepared = false
    /// Inodes whose last name was removed while a user (a FUSE lookup or an open file) still
    /// held them: freed when the last user lets go, or at close.
    var orphans: Set<UInt32> = []
}

/// The shared machinery of every write operation: the writable handle, inode
/// read-modify-write, timestamps, space checks, flushing. The operations themselves live in
/// `Ext2Create.swift`, `Ext2Unlink.swift`, `Ext2Rename.swift`, `Ext2Write.swift`,
/// `Ext2Attributes.swift` and `Ext2Xattr+Write.swift` (the model is e2fsprogs' misc/fuse2fs.c).
extension Ext2Filesystem {
    /// Runs `body` under the lock with the handle of a writable filesystem, after making sure
    /// the bitmaps are loaded and the superblock says "in use" (EROFS when opened read-only).
    func withWriteHandle<R>(_ body: (ext2_filsys) throws -> R) throws -> R {
        guard isWritable else {
            throw ImageError(path: device.displayName, structure: "filesystem", reason: "opened read-only",
                             errno: .readOnlyFileSystem)
        }
        return try withHandle { fs in
            if !writeState.prepared {
                try check(ext2fs_read_bitmaps(fs), "bitmaps")
                // As the kernel and fuse2fs do at mount: a crash from here on leaves the
                // filesystem marked as not cleanly unmounted, so e2fsck checks it.
                let sb = cext2fs_super(fs)!
                sb.pointee.s_state &= ~UInt16(EXT2_VALID_FS)
                sb.pointee.s_mnt_count &+= 1
                sb.pointee.s_mtime = UInt32(truncatingIfNeeded: time(nil))
                ext2fs_mark_super_dirty(fs)
                try check(ext2fs_flush2(fs, 0), "superblock")
                writeState.prepared = true
            }
            // What the operation writes reaches the device once, at its end (IOWriteGather.swift),
            // whether it succeeds or fails part way, before the lock is given up.
            guard let io = IOManagerBridge.context(of: fs.pointee.io) else { return try body(fs) }
            io.gather.begin(unit: blockSize, limit: io.device.size)
            let result: Result<R, any Error>
            do { result = .success(try body(fs)) } catch { result = .failure(error) }
            io.gather.end()
            do {
                try io.gather.drain(to: io.device)
            } catch {
                io.cache.removeAll()
                // The device's own error (the operation's, if it failed first, goes up instead).
                if case .success = result { throw ImageError.wrap(error) }
            }
            return try result.get()
        }
    }

    /// Marks the filesystem clean again before close (under the lock).
    func finishWritingLocked(_ fs: ext2_filsys) throws {
        let sb = cext2fs_super(fs)!
        if sb.pointee.s_state & UInt16(EXT2_ERROR_FS) == 0 { sb.pointee.s_state |= UInt16(EXT2_VALID_FS) }
        ext2fs_mark_super_dirty(fs)
        try check(ext2fs_set_gdt_csum(fs), "group descriptors")
    }

    /// Writes everything libext2fs holds in memory (superblock, group descriptors, bitmaps) and
    /// flushes the device: fsync and fsyncdir. Nothing to do when nothing was changed.
    package func sync() throws {
        guard isWritable else { return }
        try withHandle { fs in
            guard writeState.prepared else { return }
            try check(ext2fs_set_gdt_csum(fs), "group descriptors")
            try check(ext2fs_flush2(fs, 0), "flush")
        }
    }

    /// The superblock as it is now (free counts change as files are written).
    package func currentSuperblock() throws -> Ext2Superblock {
        try withHandle { fs in Ext2Superblock(cext2fs_super(fs).pointee) }
    }

    // MARK: Inodes

    /// Reads inode `number`, lets `body` change it, and writes it back whole (all 256 bytes of a
    /// large inode, so the nanosecond and creation-time fields are kept).
    @discardableResult
    func updateInode<R>(_ number: UInt32, fs: ext2_filsys, _ body: (inout ext2_inode_large) throws -> R) throws -> R {
        var (raw, _) = try readInode(number, fs: fs)
        let result = try body(&raw)
        try writeInode(number, raw, fs: fs)
        return result
    }

    func writeInode(_ number: UInt32, _ raw: ext2_inode_large, fs: ext2_filsys) throws {
        var copy = raw
        let rc = withUnsafeMutablePointer(to: &copy) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                ext2fs_write_inode2(fs, number, $0, Int32(MemoryLayout<ext2_inode_large>.size), 0)
            }
        }
        try check(rc, "inode", inode: number)
    }

    /// Counts a change to the data or size of inode `number`, for open files' block maps.
    func bumpDataVersion(_ number: UInt32) {
        dataVersions.withLock { $0[number, default: 0] &+= 1 }
    }

    func dataVersion(_ number: UInt32) -> UInt64 {
        dataVersions.withLock { $0[number] ?? 0 }
    }

    // MARK: Space

    /// Blocks kept back from file data so that metadata (directory blocks, extent-tree blocks,
    /// xattr blocks) can still be allocated when the data has filled the filesystem: running
    /// libext2fs completely out of blocks in the middle of an operation is what leaves a
    /// filesystem half-updated (fuse2fs keeps back the whole root reserve for the same reason).
    func metadataReserve(_ fs: ext2_filsys) -> UInt64 {
        let total = ext2fs_blocks_count(cext2fs_super(fs))
        return max(64, min(total / 256, 4096))
    }

    /// Free blocks now.
    func freeBlocks(_ fs: ext2_filsys) -> UInt64 { ext2fs_free_blocks_count(cext2fs_super(fs)) }

    /// Throws ENOSPC unless `blocks` more can be allocated for file data.
    func requireDataSpace(_ blocks: UInt64, fs: ext2_filsys) throws {
        guard freeBlocks(fs) >= blocks + metadataReserve(fs) else {
            throw ImageError(path: device.displayName, structure: "block allocation",
                             reason: "no space left on the filesystem", errno: .noSpace)
        }
    }
}

/// Inode fields the write operations set, with the ext4 encodings they need.
extension ext2_inode_large {
    /// Whether the large-inode field at byte `offset` (4 bytes) lies inside i_extra_isize
    /// (ext4 disk layout, "Inode Size").
    func hasExtraField(at offset: Int, inodeSize: UInt32) -> Bool {
        inodeSize > 128 && 128 + Int(i_extra_isize) >= offset + 4
    }

    /// Seconds in the 32-bit field, the epoch bits and nanoseconds in the extra word
    /// (ext4 disk layout, "Inode Timestamps").
    static func encode(_ t: Timestamp) -> (seconds: UInt32, extra: UInt32) {
        let seconds = UInt32(truncatingIfNeeded: t.seconds)
        let epoch = UInt32(truncatingIfNeeded: (t.seconds - Int64(Int32(truncatingIfNeeded: t.seconds))) >> 32) & 3
        return (seconds, epoch | UInt32(max(0, min(t.nanoseconds, 999_999_999))) << 2)
    }

    mutating func setAccessTime(_ t: Timestamp, inodeSize: UInt32) {
        let (s, e) = Self.encode(t)
        i_atime = s
        if hasExtraField(at: 0x8C, inodeSize: inodeSize) { i_atime_extra = e }
    }

    mutating func setModificationTime(_ t: Timestamp, inodeSize: UInt32) {
        let (s, e) = Self.encode(t)
        i_mtime = s
        if hasExtraField(at: 0x88, inodeSize: inodeSize) { i_mtime_extra = e }
    }

    mutating func setChangeTime(_ t: Timestamp, inodeSize: UInt32) {
        let (s, e) = Self.encode(t)
        i_ctime = s
        if hasExtraField(at: 0x84, inodeSize: inodeSize) { i_ctime_extra = e }
    }

    mutating func setCreationTime(_ t: Timestamp, inodeSize: UInt32) {
        let (s, e) = Self.encode(t)
        if hasExtraField(at: 0x90, inodeSize: inodeSize) { i_crtime = s }
        if hasExtraField(at: 0x94, inodeSize: inodeSize) { i_crtime_extra = e }
    }

    /// The change counter NFS and the kernel use (i_version), bumped on every change.
    mutating func incrementVersion(inodeSize: UInt32) {
        var version = UInt64(osd1.linux1.l_i_version)
        let high = hasExtraField(at: 0x98, inodeSize: inodeSize)
        if high { version |= UInt64(i_version_hi) << 32 }
        version &+= 1
        osd1.linux1.l_i_version = UInt32(truncatingIfNeeded: version)
        if high { i_version_hi = UInt32(truncatingIfNeeded: version >> 32) }
    }

    /// ctime (and i_version) now: every change to an inode.
    mutating func touchChange(inodeSize: UInt32, now: Timestamp = .now) {
        setChangeTime(now, inodeSize: inodeSize)
        incrementVersion(inodeSize: inodeSize)
    }

    /// mtime and ctime now: a change to a file's data or a directory's entries.
    mutating func touchModification(inodeSize: UInt32, now: Timestamp = .now) {
        setModificationTime(now, inodeSize: inodeSize)
        touchChange(inodeSize: inodeSize, now: now)
    }

    var uid: UInt32 { UInt32(i_uid) | UInt32(osd2.linux2.l_i_uid_high) << 16 }
    var gid: UInt32 { UInt32(i_gid) | UInt32(osd2.linux2.l_i_gid_high) << 16 }

    mutating func setOwner(uid: UInt32?, gid: UInt32?) {
        if let uid {
            i_uid = UInt16(truncatingIfNeeded: uid)
            osd2.linux2.l_i_uid_high = UInt16(truncatingIfNeeded: uid >> 16)
        }
        if let gid {
            i_gid = UInt16(truncatingIfNeeded: gid)
            osd2.linux2.l_i_gid_high = UInt16(truncatingIfNeeded: gid >> 16)
        }
    }
}
