import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage

/// File data: write, truncate, fallocate and hole punching (fuse2fs's op_write, op_truncate,
/// fallocate_helper, punch_helper). Every change bumps the inode's data version, so open
/// `Ext2File`s map their blocks again before the next read.
extension Ext2Filesystem {
    /// Writes `data` at `offset` of regular file `number`; returns the bytes written, fewer
    /// than asked only when the filesystem filled up part way (ENOSPC when nothing fit).
    package func write(_ number: UInt32, at offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Int {
        guard data.count > 0 else { return 0 }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(data.count))
        guard !overflow, end <= Self.maxFileSize else { throw error(.fileTooLarge, "write", "file would exceed 16 TiB") }
        return try withWriteHandle { fs in
            defer { bumpDataVersion(number) }
            let file = try openForWriting(number, fs: fs)
            var written = 0
            var failure: (any Error)?
            do {
                try check(ext2fs_file_llseek(file, offset, Int32(EXT2_SEEK_SET), nil), "seek", inode: number)
                let bs = blockSize
                while written < data.count {
                    // Never let file data take the blocks metadata may still need (see metadataReserve).
                    let free = freeBlocks(fs), reserve = metadataReserve(fs)
                    let allowedBlocks = free > reserve ? Int(min(free - reserve, 1 << 20)) : 0
                    var chunk = min(data.count - written, 1 << 20)
                    let needed = (chunk + bs - 1) / bs + 1
                    if needed > allowedBlocks { chunk = min(chunk, max(0, allowedBlocks - 1) * bs) }
                    guard chunk > 0 else {
                        throw error(.noSpace, "write of inode \(number)", "no space left on the filesystem")
                    }
                    var got: UInt32 = 0
                    let rc = ext2fs_file_write(file, data.baseAddress! + written, UInt32(chunk), &got)
                    written += Int(got)
                    try check(rc, "write", inode: number)
                    if got == 0 { break }
                }
            } catch {
                failure = error
            }
            let closeCode = ext2fs_file_close(file)
            if let failure, written == 0 { throw failure }
            try check(closeCode, "write", inode: number)
            let inodeSize = superblock.inodeSize
            try updateInode(number, fs: fs) { $0.touchModification(inodeSize: inodeSize) }
            return written
        }
    }

    /// Sets the size of regular file `number`: blocks past the new end are freed, the tail of
    /// the last block is zeroed, and growing leaves a hole. mtime and ctime change even when the
    /// size stays, as on the kernel's ext4 (truncate(2), ftruncate(2) and open(O_TRUNC) alike).
    package func truncate(_ number: UInt32, to size: UInt64) throws {
        guard size <= Self.maxFileSize else { throw error(.fileTooLarge, "truncate", "file would exceed 16 TiB") }
        try withWriteHandle { fs in
            defer { bumpDataVersion(number) }
            let file = try openForWriting(number, fs: fs)
            let rc = ext2fs_file_set_size2(file, ext2_off64_t(size))
            let closeCode = ext2fs_file_close(file)
            try check(rc, "truncate", inode: number)
            try check(closeCode, "truncate", inode: number)
            let inodeSize = superblock.inodeSize
            try updateInode(number, fs: fs) { $0.touchModification(inodeSize: inodeSize) }
        }
    }

    /// fallocate: allocates `[offset, offset+length)` as unwritten extents that read as zeros
    /// (zeroed blocks on block-mapped files), and grows the size unless `keepSize`.
    package func allocate(_ number: UInt32, at offset: UInt64, length: UInt64, keepSize: Bool) throws {
        guard length > 0 else { throw error(.invalidArgument, "fallocate", "zero length") }
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= Self.maxFileSize else { throw error(.fileTooLarge, "fallocate", "file would exceed 16 TiB") }
        try withWriteHandle { fs in
            defer { bumpDataVersion(number) }
            var (raw, inode) = try readInode(number, fs: fs)
            guard inode.isRegular else { throw error(.invalidArgument, "fallocate", "not a regular file") }
            guard !inode.hasInlineData else { throw error(.notSupported, "fallocate", "inline-data file") }
            let bs = UInt64(blockSize)
            let first = offset / bs, last = (end - 1) / bs
            try requireDataSpace(last - first + 1, fs: fs)
            let flags = inode.usesExtents
                ? Int32(EXT2_FALLOCATE_FORCE_UNINIT)
                : Int32(EXT2_FALLOCATE_ZERO_BLOCKS | EXT2_FALLOCATE_FORCE_INIT)
            let rc = withUnsafeMutablePointer(to: &raw) { p in
                p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                    ext2fs_fallocate(fs, flags, number, $0, ~0, first, last - first + 1)
                }
            }
            // libext2fs changed `raw` itself (i_blocks for every block claimed, the extent root),
            // and wrote it only when the tree's root moved: `raw` is the inode now, so it is what
            // gets written back. Re-reading it from disk would lose the blocks' count (e2fsck:
            // "i_blocks is X, should be Y"), and later truncates would underflow it.
            if rc != 0 {
                // A partial allocation is still counted in `raw`: write it, then report the error.
                try writeInode(number, raw, fs: fs)
                try check(rc, "fallocate", inode: number)
            }
            if !keepSize && end > (UInt64(raw.i_size) | UInt64(raw.i_size_high) << 32) {
                raw.i_size = UInt32(truncatingIfNeeded: end)
                raw.i_size_high = UInt32(truncatingIfNeeded: end >> 32)
            }
            // As ext4_fallocate (file_modified): mtime and ctime, with or without keep-size.
            raw.touchModification(inodeSize: superblock.inodeSize)
            try writeInode(number, raw, fs: fs)
        }
    }

    /// FALLOC_FL_PUNCH_HOLE: `[offset, offset+length)` reads as zeros afterwards; whole blocks
    /// inside it are freed, partial blocks at its edges are zeroed in place. The size stays.
    package func punchHole(_ number: UInt32, at offset: UInt64, length: UInt64) throws {
        guard length > 0 else { throw error(.invalidArgument, "fallocate", "zero length") }
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow else { throw error(.invalidArgument, "fallocate", "range overflows") }
        try withWriteHandle { fs in
            defer { bumpDataVersion(number) }
            var (raw, inode) = try readInode(number, fs: fs)
            guard inode.isRegular else { throw error(.invalidArgument, "fallocate", "not a regular file") }
            guard !inode.hasInlineData else { throw error(.notSupported, "fallocate", "inline-data file") }
            let bs = UInt64(blockSize)
            let firstWhole = (offset + bs - 1) / bs, endWhole = end / bs
            // The partial blocks at each edge (one block when the range sits inside it).
            var edges: [(block: UInt64, from: Int, to: Int)] = []
            let firstBlock = offset / bs, lastBlock = (end - 1) / bs
            if firstBlock == lastBlock {
                if offset % bs != 0 || end % bs != 0 { edges.append((firstBlock, Int(offset % bs), Int((end - 1) % bs) + 1)) }
            } else {
                if offset % bs != 0 { edges.append((firstBlock, Int(offset % bs), Int(bs))) }
                if end % bs != 0 { edges.append((lastBlock, 0, Int(end % bs))) }
            }
            for edge in edges { try zeroInPlace(number, &raw, edge.block, edge.from..<edge.to, fs: fs) }
            if firstWhole < endWhole {
                let rc = withUnsafeMutablePointer(to: &raw) { p in
                    p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                        ext2fs_punch(fs, number, $0, nil, firstWhole, endWhole - 1)
                    }
                }
                // ext2fs_punch writes the inode only when it succeeds; on a failure part way
                // `raw` still counts what was freed, so it is written before the error goes up.
                if rc != 0 {
                    try writeInode(number, raw, fs: fs)
                    try check(rc, "punch hole", inode: number)
                }
            }
            let inodeSize = superblock.inodeSize
            try updateInode(number, fs: fs) { $0.touchModification(inodeSize: inodeSize) }
        }
    }

    /// ext4's largest file with 4 KiB blocks and extents; a hard cap on offsets we accept.
    static let maxFileSize: UInt64 = 16 << 40

    private func openForWriting(_ number: UInt32, fs: ext2_filsys) throws -> ext2_file_t {
        let (_, inode) = try readInode(number, fs: fs)
        guard !inode.isDirectory else { throw error(.isDirectory, "inode \(number)", "is a directory") }
        guard inode.isRegular else { throw error(.invalidArgument, "inode \(number)", "not a regular file") }
        var file: ext2_file_t?
        try check(ext2fs_file_open(fs, number, Int32(EXT2_FILE_WRITE), &file), "open", inode: number)
        guard let file else { throw error(.ioError, "inode \(number)", "ext2fs_file_open returned no file") }
        return file
    }

    /// Zeroes bytes `range` of logical block `block` when it is mapped and written (a hole or an
    /// unwritten extent already reads as zeros).
    private func zeroInPlace(_ number: UInt32, _ raw: inout ext2_inode_large, _ block: UInt64, _ range: Range<Int>,
                             fs: ext2_filsys) throws {
        var physical: blk64_t = 0
        var returned: Int32 = 0
        let rc = withUnsafeMutablePointer(to: &raw) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) {
                ext2fs_bmap2(fs, number, $0, nil, 0, block, &returned, &physical)
            }
        }
        try check(rc, "block map", inode: number)
        guard physical != 0, returned & Int32(BMAP_RET_UNINIT) == 0 else { return }
        guard physical < superblock.blocksCount else {
            throw error(.ioError, "inode \(number)", "block \(physical) lies outside the filesystem")
        }
        // Through libext2fs's channel (not the device directly), so its block cache stays right.
        var bytes = [UInt8](repeating: 0, count: blockSize)
        try check(bytes.withUnsafeMutableBytes { io_channel_read_blk64(fs.pointee.io, physical, 1, $0.baseAddress) },
                  "read block", inode: number)
        for i in range { bytes[i] = 0 }
        try check(bytes.withUnsafeBytes { io_channel_write_blk64(fs.pointee.io, physical, 1, $0.baseAddress) },
                  "write block", inode: number)
    }
}
