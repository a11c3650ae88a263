import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

/// Adding a name to a directory in constant time.
///
/// ext2fs_link looks for room from the directory's first block on, reading (and checking the
/// checksum of) every block each time, so filling a 20 000-entry directory costs a quadratic
/// number of block reads. Like the kernel's ext4 for a linear directory that has no room
/// earlier, this appends: the new entry goes into the slack of the last block, or into a new
/// last block. Holes left by removed entries are only reused through ext2fs_link's path.
/// Directory entry layout: ext4 disk layout, "Linear (Classic) Directories" and "Checksums"
/// (the 12-byte `ext2_dir_entry_tail` at the end of each block with metadata_csum).
extension Ext2Filesystem {
    /// Appends (name, child) to `dir` and returns the logical block it went into; nil when this
    /// fast path does not apply (htree or inline-data directory, odd size) or the last block has no room.
    func appendEntry(_ dir: UInt32, _ name: [UInt8], _ child: UInt32, fileType: Int32, fs: ext2_filsys) throws -> UInt32? {
        let (raw, inode) = try readInode(dir, fs: fs)
        let bs = UInt64(blockSize)
        guard inode.isDirectory, !inode.hasInlineData, raw.i_flags & UInt32(EXT2_INDEX_FL) == 0,
              inode.size >= bs, inode.size % bs == 0, name.count <= 255 else { return nil }
        let logical = inode.size / bs - 1
        var rawCopy = raw
        var physical: blk64_t = 0
        let rc = withUnsafeMutablePointer(to: &rawCopy) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                ext2fs_bmap2(fs, dir, $0, nil, 0, logical, nil, &physical)
            }
        }
        try check(rc, "directory block map", inode: dir)
        guard physical != 0, physical < superblock.blocksCount else { return nil }

        var block = [UInt8](repeating: 0, count: blockSize)
        try check(block.withUnsafeMutableBytes { ext2fs_read_dir_block4(fs, physical, $0.baseAddress, 0, dir) },
                  "directory block", inode: dir)
        let csum = ext2fs_has_feature_metadata_csum(cext2fs_super(fs)) != 0
        let limit = blockSize - (csum ? 12 : 0)
        let needed = Self.entrySize(name.count)
        let placed: Bool = block.withUnsafeMutableBytes { buffer -> Bool in
            let base = buffer.baseAddress!
            func entry(_ offset: Int) -> UnsafeMutablePointer<ext2_dir_entry> {
                (base + offset).assumingMemoryBound(to: ext2_dir_entry.self)
            }
            func recLen(_ offset: Int) -> Int? {
                var length: UInt32 = 0
                guard ext2fs_get_rec_len(fs, entry(offset), &length) == 0 else { return nil }
                return Int(length)
            }
            // Walk to the last entry; a malformed chain means "let libext2fs handle it".
            var offset = 0, last = -1
            while offset < limit {
                guard let length = recLen(offset), length >= 8, offset + length <= limit else { return false }
                last = offset
                offset += length
            }
            guard offset == limit, last >= 0, let lastLength = recLen(last) else { return false }
            let lastEntry = entry(last)
            var at = last, room = lastLength
            if lastEntry.pointee.inode != 0 {
                let used = Self.entrySize(Int(ext2fs_dirent_name_len(lastEntry)))
                guard lastLength - used >= needed else { return false }
                guard ext2fs_set_rec_len(fs, UInt32(used), lastEntry) == 0 else { return false }
                at = last + used
                room = lastLength - used
            } else if lastLength < needed {
                return false
            }
            let new = entry(at)
            new.pointee.inode = child
            guard ext2fs_set_rec_len(fs, UInt32(room), new) == 0 else { return false }
            ext2fs_dirent_set_name_len(new, Int32(name.count))
            ext2fs_dirent_set_file_type(new, superblock.incompatFeatures & Ext2Superblock.incompatFileType != 0 ? fileType : 0)
            name.withUnsafeBytes { (base + at + 8).copyMemory(from: $0.baseAddress!, byteCount: name.count) }
            return true
        }
        guard placed else { return nil }
        try check(block.withUnsafeMutableBytes { ext2fs_write_dir_block4(fs, physical, $0.baseAddress, 0, dir) },
                  "directory block", inode: dir)
        return UInt32(logical)
    }

    /// Removes (name, child) from logical block `logical` of `dir`, where the directory cache
    /// last saw it, as ext2fs_unlink would (the first entry of a block is emptied, any other is
    /// merged into the one before it); false when it is not there.
    func removeEntry(_ dir: UInt32, _ name: [UInt8], _ child: UInt32, logical: UInt32, fs: ext2_filsys) throws -> Bool {
        let (raw, inode) = try readInode(dir, fs: fs)
        guard inode.isDirectory, !inode.hasInlineData, UInt64(logical) < inode.size / UInt64(blockSize) else { return false }
        var rawCopy = raw
        var physical: blk64_t = 0
        let rc = withUnsafeMutablePointer(to: &rawCopy) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                ext2fs_bmap2(fs, dir, $0, nil, 0, blk64_t(logical), nil, &physical)
            }
        }
        try check(rc, "directory block map", inode: dir)
        guard physical != 0, physical < superblock.blocksCount else { return false }
        var block = [UInt8](repeating: 0, count: blockSize)
        try check(block.withUnsafeMutableBytes { ext2fs_read_dir_block4(fs, physical, $0.baseAddress, 0, dir) },
                  "directory block", inode: dir)
        let csum = ext2fs_has_feature_metadata_csum(cext2fs_super(fs)) != 0
        let limit = blockSize - (csum ? 12 : 0)
        let removed: Bool = block.withUnsafeMutableBytes { buffer -> Bool in
            let base = buffer.baseAddress!
            func entry(_ offset: Int) -> UnsafeMutablePointer<ext2_dir_entry> {
                (base + offset).assumingMemoryBound(to: ext2_dir_entry.self)
            }
            var offset = 0, previous = -1
            while offset < limit {
                var length: UInt32 = 0
                guard ext2fs_get_rec_len(fs, entry(offset), &length) == 0, length >= 8, offset + Int(length) <= limit else { return false }
                let e = entry(offset)
                let nameLength = Int(ext2fs_dirent_name_len(e))
                if e.pointee.inode == child, nameLength == name.count, 8 + nameLength <= Int(length),
                   UnsafeRawBufferPointer(start: base + offset + 8, count: nameLength).elementsEqual(name) {
                    if previous < 0 {
                        e.pointee.inode = 0
                    } else {
                        var before: UInt32 = 0
                        guard ext2fs_get_rec_len(fs, entry(previous), &before) == 0,
                              ext2fs_set_rec_len(fs, before + length, entry(previous)) == 0 else { return false }
                    }
                    return true
                }
                previous = offset
                offset += Int(length)
            }
            return false
        }
        guard removed else { return false }
        try check(block.withUnsafeMutableBytes { ext2fs_write_dir_block4(fs, physical, $0.baseAddress, 0, dir) },
                  "directory block", inode: dir)
        return true
    }

    /// An entry's size on disk: 8 bytes of header and the name, padded to 4 bytes.
    static func entrySize(_ nameLength: Int) -> Int { 8 + (nameLength + 3) & ~3 }
}
