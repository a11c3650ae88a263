#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import SystemPackage

/// File data and attributes: write, truncate, setattr, fallocate and sync, with the calls
/// lowntfs-3g makes (ntfs_attr_pwrite, ntfs_attr_truncate, ntfs_attr_pclose for compressed
/// data, ntfs_inode_update_times, set_archive). As ntfs-3g without `permissions`, chmod and
/// chown change nothing and succeed (its `silent` default), and stat keeps showing the
/// owner and masks of the mount options.
extension NTFSFilesystem {
    /// Opens the unnamed $DATA of the regular file `node` for a change, under the lock on the
    /// read-write volume. EISDIR for a directory; EACCES for EFS-encrypted data, which ntfs-3g
    /// writes only with efs_raw.
    func withData<T>(_ vol: UnsafeMutablePointer<ntfs_volume>, _ node: UInt64,
                     _ body: (UnsafeMutablePointer<ntfs_inode>, UnsafeMutablePointer<ntfs_attr>) throws -> T) throws -> T {
        try withInode(vol, node) { ni in
            guard cntfs3g_is_directory(ni) == 0 else {
                throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "is a directory", errno: .isDirectory)
            }
            guard let na = ntfs_attr_open(ni, AT_DATA, cntfs3g_unnamed(), 0) else {
                throw failure(Self.recordName(node), "cannot open the unnamed $DATA attribute")
            }
            defer { ntfs_attr_close(na) }
            if NAttrEncrypted(na) != 0 {
                throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "the file is EFS-encrypted", errno: .permissionDenied)
            }
            return try body(ni, na)
        }
    }

    /// Writes `data` at `offset`; fewer bytes only when the volume fills part way (ENOSPC
    /// when nothing fits). mtime and ctime change and the archive bit is set (ntfs_fuse_write).
    package func write(_ node: UInt64, at offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Int {
        guard data.count > 0 else { return 0 }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(data.count))
        guard !overflow, end <= UInt64(Int64.max), let base = data.baseAddress else {
            throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "write past the largest file size", errno: .fileTooLarge)
        }
        return try writing { vol in
            try withData(vol, node) { ni, na in
                var done = 0
                while done < data.count {
                    let n = ntfs_attr_pwrite(na, Int64(offset) + Int64(done), Int64(data.count - done), base + done)
                    if n <= 0 {
                        if done > 0 { break }
                        throw failure(Self.recordName(node), "cannot write $DATA at \(offset)")
                    }
                    done += Int(min(n, Int64(data.count - done)))
                }
                // A compressed attribute keeps its last compression block uncompressed until
                // ntfs_attr_pclose (lowntfs-3g calls it at release; we have no release).
                if NAttrCompressed(na) != 0 && ntfs_attr_pclose(na) != 0 {
                    throw failure(Self.recordName(node), "cannot finish the compressed $DATA")
                }
                ntfs_inode_update_times(ni, ntfs_time_update_flags(NTFS_UPDATE_MTIME.rawValue | NTFS_UPDATE_CTIME.rawValue))
                cntfs3g_set_archive(ni)
                return done
            }
        }
    }

    package func truncate(_ node: UInt64, to size: UInt64) throws {
        guard size <= UInt64(Int64.max) else {
            throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "size past the largest file size", errno: .fileTooLarge)
        }
        try writing { vol in try truncate(vol, node, to: size) }
    }

    /// ntfs_attr_truncate of the unnamed $DATA (lowntfs-3g ntfs_fuse_trunc): growing leaves a
    /// hole (sparse where the volume allows) that reads as zeros; mtime and ctime change even
    /// when the size does not, as ext4's do for O_TRUNC.
    func truncate(_ vol: UnsafeMutablePointer<ntfs_volume>, _ node: UInt64, to size: UInt64) throws {
        try withData(vol, node) { ni, na in
            if na.pointee.data_size != Int64(size) && ntfs_attr_truncate(na, Int64(size)) != 0 {
                throw failure(Self.recordName(node), "cannot truncate $DATA to \(size)")
            }
            ntfs_inode_update_times(ni, ntfs_time_update_flags(NTFS_UPDATE_MTIME.rawValue | NTFS_UPDATE_CTIME.rawValue))
            cntfs3g_set_archive(ni)
        }
    }

    /// setattr: the size (truncate), atime, mtime and ctime (ntfs_fuse_utimens: an explicit
    /// time, or now; ctime is now unless given). Mode, owner and group are accepted and not
    /// stored, as ntfs-3g does without `permissions` and a user mapping (its `silent`
    /// default): such a setattr alone writes nothing.
    package func setAttributes(_ node: UInt64, _ changes: AttributeChanges) throws {
        if let size = changes.size, size > UInt64(Int64.max) {
            throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "size past the largest file size", errno: .fileTooLarge)
        }
        guard changes.size != nil || changes.accessTime != nil || changes.modificationTime != nil || changes.changeTime != nil else {
            _ = try attributes(node)
            return
        }
        try writing { vol in
            if let size = changes.size { try truncate(vol, node, to: size) }
            guard changes.accessTime != nil || changes.modificationTime != nil || changes.changeTime != nil else { return }
            try withInode(vol, node) { ni in
                func ntfs(_ t: AttributeChanges.Time) -> UInt64 {
                    switch t {
                    case .now: return cntfs3g_now()
                    case .at(let ts): return cntfs3g_time(ts.seconds, ts.nanoseconds)
                    }
                }
                if let a = changes.accessTime { ni.pointee.last_access_time = ntfs(a) }
                if let m = changes.modificationTime { ni.pointee.last_data_change_time = ntfs(m) }
                ni.pointee.last_mft_change_time = changes.changeTime.map { cntfs3g_time($0.seconds, $0.nanoseconds) } ?? cntfs3g_now()
                cntfs3g_inode_mark_dirty(ni)
            }
        }
    }

    /// ntfs-3g has no fallocate (neither ntfs-3g nor lowntfs-3g sets the operation, so the
    /// kernel answers EOPNOTSUPP and posix_fallocate falls back to writing).
    package func allocate(_ node: UInt64, at offset: UInt64, length: UInt64, keepSize: Bool) throws {
        _ = try attributes(node)
        throw ImageError(path: device.displayName, structure: "fallocate", reason: "not supported on NTFS (as ntfs-3g)", errno: .notSupported)
    }

    package func punchHole(_ node: UInt64, at offset: UInt64, length: UInt64) throws {
        _ = try attributes(node)
        throw ImageError(path: device.displayName, structure: "fallocate", reason: "not supported on NTFS (as ntfs-3g)", errno: .notSupported)
    }

    /// fsync/syncfs: every change closed its inodes already (which writes them); what is left
    /// is the volume's own records and the device (lowntfs-3g ntfs_fuse_fsync syncs the device).
    package func sync() throws {
        try withVolume { vol in
            guard mountedReadWrite else { return }
            if cntfs3g_volume_sync(vol) != 0 { throw failure("NTFS volume", "cannot sync") }
        }
    }

    /// The current size and data ranges of the unnamed $DATA of `node` (NTFSFile on a
    /// writable volume, whose files change under it).
    func currentData(_ node: UInt64) throws -> (size: UInt64, ranges: [(offset: UInt64, length: UInt64)]) {
        try withVolume { vol in
            try withInode(vol, node) { ni in
                guard let na = ntfs_attr_open(ni, AT_DATA, cntfs3g_unnamed(), 0) else {
                    throw failure(Self.recordName(node), "cannot open the unnamed $DATA attribute")
                }
                defer { ntfs_attr_close(na) }
                return (UInt64(max(0, na.pointee.data_size)), try dataRanges(na, node: node))
            }
        }
    }
}
