import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage

/// rename within one filesystem (fuse2fs's op_rename, plus RENAME_NOREPLACE and
/// RENAME_EXCHANGE, which fuse2fs refuses). A replaced target is swapped in place: its entry is
/// pointed at the source inode, so the target name never goes missing.
extension Ext2Filesystem {
    package func rename(from srcDir: UInt32, _ srcName: [UInt8], to dstDir: UInt32, _ dstName: [UInt8],
                       flags: RenameFlags = []) throws {
        guard flags.isSubset(of: [.noReplace, .exchange]), flags != [.noReplace, .exchange] else {
            throw error(.invalidArgument, "rename", "unsupported flags 0x\(String(flags.rawValue, radix: 16))")
        }
        try withWriteHandle { fs in
            let src = try existingEntry(srcDir, srcName, fs: fs)
            try Self.validate(dstName)
            let (_, dstParent) = try readInode(dstDir, fs: fs)
            guard dstParent.isDirectory else { throw error(.notDirectory, "inode \(dstDir)", "not a directory") }
            guard dstParent.links > 0 else { throw error(.noSuchFileOrDirectory, "inode \(dstDir)", "directory has been removed") }
            let dst = try lookupLocked(dstDir, dstName, fs: fs)
            let (srcRaw, srcInode) = try readInode(src.inode, fs: fs)
            let inodeSize = superblock.inodeSize

            if flags.contains(.exchange) {
                guard let dst else { throw error(.noSuchFileOrDirectory, String(decoding: dstName, as: UTF8.self), "no such file or directory") }
                if dst.inode == src.inode { return }
                let (dstRaw, dstInode) = try readInode(dst.inode, fs: fs)
                try setEntry(srcDir, srcName, to: dst.inode, fileType: Self.direntType(dstRaw.i_mode), fs: fs)
                try setEntry(dstDir, dstName, to: src.inode, fileType: Self.direntType(srcRaw.i_mode), fs: fs)
                if srcDir != dstDir {
                    if srcInode.isDirectory { try moveDirectory(src.inode, from: srcDir, to: dstDir, fs: fs) }
                    if dstInode.isDirectory { try moveDirectory(dst.inode, from: dstDir, to: srcDir, fs: fs) }
                }
                for n in [src.inode, dst.inode] { try updateInode(n, fs: fs) { $0.touchChange(inodeSize: inodeSize) } }
                try touchDirectory(srcDir, fs: fs)
                if dstDir != srcDir { try touchDirectory(dstDir, fs: fs) }
                return
            }

            if let dst {
                guard !flags.contains(.noReplace) else {
                    throw error(.fileExists, String(decoding: dstName, as: UTF8.self), "already exists")
                }
                // Two names of one inode: POSIX says do nothing.
                if dst.inode == src.inode { return }
                let (_, dstInode) = try readInode(dst.inode, fs: fs)
                if srcInode.isDirectory && !dstInode.isDirectory {
                    throw error(.notDirectory, String(decoding: dstName, as: UTF8.self), "not a directory")
                }
                if !srcInode.isDirectory && dstInode.isDirectory {
                    throw error(.isDirectory, String(decoding: dstName, as: UTF8.self), "is a directory")
                }
                if dstInode.isDirectory, try !readDirectory(dst.inode, fs: fs).isEmpty {
                    throw error(.directoryNotEmpty, String(decoding: dstName, as: UTF8.self), "directory not empty")
                }
                try setEntry(dstDir, dstName, to: src.inode, fileType: Self.direntType(srcRaw.i_mode), fs: fs)
                try touchDirectory(dstDir, fs: fs)
                if dstInode.isDirectory {
                    try removeDirectoryInode(dst.inode, parent: dstDir, fs: fs)
                } else {
                    try dropLink(dst.inode, fs: fs)
                }
            } else {
                try link(dstDir, dstName, src.inode, fileType: Self.direntType(srcRaw.i_mode), fs: fs)
            }
            try removeName(srcDir, srcName, src.inode, fs: fs)
            if srcInode.isDirectory && srcDir != dstDir {
                try moveDirectory(src.inode, from: srcDir, to: dstDir, fs: fs)
            }
            try updateInode(src.inode, fs: fs) { $0.touchChange(inodeSize: inodeSize) }
        }
    }

    /// A directory now lives in `to`: its `..` points there, and the `..` link moves from the
    /// old parent's count to the new one's.
    private func moveDirectory(_ dir: UInt32, from: UInt32, to: UInt32, fs: ext2_filsys) throws {
        try setEntry(dir, [0x2E, 0x2E], to: to, fileType: nil, fs: fs)
        let inodeSize = superblock.inodeSize
        try updateInode(from, fs: fs) { raw in
            if raw.i_links_count > 2 { raw.i_links_count -= 1 }
            raw.touchChange(inodeSize: inodeSize)
        }
        try updateInode(to, fs: fs) { raw in
            // dir_nlink: past 65 000 a directory's count stays at 1 ("many").
            if raw.i_links_count > 1 && raw.i_links_count < 65_000 { raw.i_links_count += 1 }
            raw.touchChange(inodeSize: inodeSize)
        }
    }

    /// Points the entry `name` of `dir` at `inode` in place (ext2fs_dir_iterate2 with
    /// DIRENT_CHANGED), keeping or setting its file type.
    private func setEntry(_ dir: UInt32, _ name: [UInt8], to inode: UInt32, fileType: Int32?, fs: ext2_filsys) throws {
        final class Change {
            let name: [UInt8]; let inode: UInt32; let fileType: Int32?
            var done = false
            init(name: [UInt8], inode: UInt32, fileType: Int32?) { self.name = name; self.inode = inode; self.fileType = fileType }
        }
        let change = Change(name: name, inode: inode, fileType: fileType)
        let rc = withExtendedLifetime(change) {
            ext2fs_dir_iterate2(fs, dir, 0, nil, { _, _, dirent, _, _, _, priv in
                guard let dirent, let priv else { return DIRENT_ABORT }
                let c = Unmanaged<Change>.fromOpaque(priv).takeUnretainedValue()
                let length = Int(ext2fs_dirent_name_len(dirent))
                guard dirent.pointee.inode != 0, length == c.name.count else { return 0 }
                let same = withUnsafeBytes(of: &dirent.pointee.name) { raw in
                    raw.count >= length && raw.prefix(length).elementsEqual(c.name)
                }
                guard same else { return 0 }
                dirent.pointee.inode = c.inode
                if let type = c.fileType { ext2fs_dirent_set_file_type(dirent, type) }
                c.done = true
                return DIRENT_CHANGED | DIRENT_ABORT
            }, Unmanaged.passUnretained(change).toOpaque())
        }
        if rc == 0 && change.done, let cached = directoryCache.entries(of: dir)?.byName[name] {
            let type = fileType.map { UInt8($0) } ?? cached.fileType
            directoryCache.update(dir, name: name, entry: DirEntry(name: name, inode: inode,
                                                                   fileType: cached.fileType == DirEntry.typeUnknown ? cached.fileType : type))
        } else if name != [0x2E, 0x2E] {
            directoryCache.invalidate(dir)
        }
        try check(rc, "directory", inode: dir)
        guard change.done else {
            throw error(.ioError, "directory inode \(dir)", "entry \(String(decoding: name, as: UTF8.self)) vanished during rename")
        }
    }
}
