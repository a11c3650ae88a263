import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import Synchronization

/// A contiguous run of a file's logical blocks and where it lives.
///
/// Logical blocks not covered by any run are holes and read as zeros.
package struct BlockRun: Sendable, Equatable {
    package var logical: UInt64
    package var count: UInt64
    package var physical: UInt64
    /// An unwritten (preallocated) extent: allocated, but reads as zeros
    /// (ext4 disk layout, "Extent Tree": ee_len > 32768 marks an uninitialized extent).
    package var zeroed: Bool
}

/// An open regular file (or slow symlink) whose data can be read from several threads.
///
/// Its block map is resolved once, under the filesystem lock, when it is opened; reads then go
/// straight to the block device without the lock (DESIGN.md §1). A map so fragmented that it
/// would exceed `maxMappedRuns` is not kept: such files are mapped per read instead.
package final class Ext2File: Sendable {
    package let filesystem: Ext2Filesystem

    /// What one mapping of the file found; replaced when a write changed the file since.
    struct Mapping: Sendable {
        let inode: Ext2Inode
        /// The data of an inline-data file (stored in the inode and its xattr).
        let inline: [UInt8]?
        /// Sorted by `logical`; nil when the file is mapped per read.
        let runs: [BlockRun]?
        /// The filesystem's data version of the inode when this was mapped.
        let version: UInt64
    }
    private let mapping: Mutex<Mapping>

    /// Past this many runs (about 24 MiB of map) a file is mapped per read.
    static let maxMappedRuns = 1 << 20

    init(filesystem: Ext2Filesystem, inode: Ext2Inode, inline: [UInt8]?, runs: [BlockRun]?, version: UInt64 = 0) {
        self.filesystem = filesystem
        self.mapping = Mutex(Mapping(inode: inode, inline: inline, runs: runs, version: version))
    }

    /// The current mapping: on a writable filesystem, mapped again when the file was written,
    /// truncated or punched since (a read-only one never changes, and pays nothing for this).
    func current() throws -> Mapping {
        let m = mapping.withLock { $0 }
        guard filesystem.isWritable, filesystem.dataVersion(m.inode.number) != m.version else { return m }
        let fresh = try filesystem.openFile(m.inode.number).mapping.withLock { $0 }
        mapping.withLock { $0 = fresh }
        return fresh
    }

    package var inode: Ext2Inode { mapping.withLock { $0.inode } }
    var inline: [UInt8]? { mapping.withLock { $0.inline } }
    var runs: [BlockRun]? { mapping.withLock { $0.runs } }

    package var size: UInt64 { inode.size }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (short only at end of file).
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        let m = try current()
        let inode = m.inode, inline = m.inline, runs = m.runs, size = inode.size
        guard offset < size, buffer.count > 0 else { return 0 }
        let length = Int(min(UInt64(buffer.count), size - offset))
        if let inline {
            let start = Int(min(offset, UInt64(inline.count)))
            let available = max(0, min(length, inline.count - start))
            inline.withUnsafeBytes { src in
                if available > 0 {
                    buffer.baseAddress!.copyMemory(from: src.baseAddress! + start, byteCount: available)
                }
            }
            if available < length {
                UnsafeMutableRawBufferPointer(rebasing: buffer[available..<length]).initializeMemory(as: UInt8.self, repeating: 0)
            }
            return length
        }
        let map = try runs ?? filesystem.mapBlocks(inode: inode, from: offset / UInt64(filesystem.blockSize),
                                                    through: (offset + UInt64(length) - 1) / UInt64(filesystem.blockSize))
        try Self.copy(runs: map, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), at: offset,
                      blockSize: UInt64(filesystem.blockSize), filesystem: filesystem)
        return length
    }

    /// The byte ranges of the file that hold data (not holes, not unwritten extents), in order.
    /// `copy-out` uses them to keep holes; FUSE uses them for SEEK_DATA/SEEK_HOLE.
    package func dataRanges() throws -> [(offset: UInt64, length: UInt64)] {
        let m = try current()
        let inode = m.inode, inline = m.inline, runs = m.runs, size = inode.size
        if inline != nil { return size > 0 ? [(offset: UInt64(0), length: size)] : [] }
        let blockSize = UInt64(filesystem.blockSize)
        let lastBlock = size == 0 ? 0 : (size - 1) / blockSize
        let map = try runs ?? filesystem.mapBlocks(inode: inode, from: 0, through: lastBlock)
        var ranges: [(offset: UInt64, length: UInt64)] = []
        for run in map where !run.zeroed {
            let start = run.logical * blockSize
            guard start < size else { break }
            let end = min(size, (run.logical + run.count) * blockSize)
            if let last = ranges.last, last.offset + last.length == start {
                ranges[ranges.count - 1].length += end - start
            } else {
                ranges.append((start, end - start))
            }
        }
        return ranges
    }

    /// Copies file bytes `[offset, offset+buffer.count)` using `runs`; holes become zeros.
    static func copy(runs: [BlockRun], into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64,
                     blockSize: UInt64, filesystem: Ext2Filesystem) throws {
        var done = 0
        // Binary search for the last run starting at or before the first block.
        var low = 0, high = runs.count
        let firstBlock = offset / blockSize
        while low < high {
            let mid = (low + high) / 2
            if runs[mid].logical <= firstBlock { low = mid + 1 } else { high = mid }
        }
        var index = max(0, low - 1)
        while done < buffer.count {
            let position = offset + UInt64(done)
            let block = position / blockSize
            while index < runs.count, runs[index].logical + runs[index].count <= block { index += 1 }
            let chunk: Int
            if index < runs.count, runs[index].logical <= block {
                let run = runs[index]
                let runEnd = (run.logical + run.count) * blockSize
                chunk = Int(min(UInt64(buffer.count - done), runEnd - position))
                let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + chunk])
                if run.zeroed || run.physical == 0 {
                    target.initializeMemory(as: UInt8.self, repeating: 0)
                } else {
                    // physical comes from an extent or indirect block: checked, as readData checks the end.
                    let (physical, o1) = run.physical.addingReportingOverflow(block - run.logical)
                    let (base, o2) = physical.multipliedReportingOverflow(by: blockSize)
                    guard !o1, !o2 else {
                        throw ImageError(path: filesystem.device.displayName, structure: "extent",
                                         reason: "data block \(run.physical) + \(block - run.logical) lies outside the filesystem",
                                         errno: .ioError)
                    }
                    try filesystem.readData(into: target, at: base + position % blockSize, inode: run)
                }
            } else {
                let nextStart = index < runs.count ? runs[index].logical * blockSize : UInt64.max
                chunk = Int(min(UInt64(buffer.count - done), nextStart - position))
                UnsafeMutableRawBufferPointer(rebasing: buffer[done..<done + chunk]).initializeMemory(as: UInt8.self, repeating: 0)
            }
            done += chunk
        }
    }
}

extension Ext2Filesystem {
    /// Opens inode `number` for reading its data: maps its blocks under the lock, once.
    package func openFile(_ number: UInt32) throws -> Ext2File {
        try withHandle { fs in
            // Read before the inode: a write that lands in between makes the next read map again.
            let version = isWritable ? dataVersion(number) : 0
            let (raw, inode) = try readInode(number, fs: fs)
            try checkFileShape(inode)
            if inode.hasInlineData {
                return Ext2File(filesystem: self, inode: inode, inline: try inlineData(raw, inode: inode, fs: fs), runs: nil,
                                version: version)
            }
            if inode.isSymlink && ext2fsIsFastSymlink(raw) {
                let bytes = withUnsafeBytes(of: raw.i_block) { Array($0.prefix(Int(min(inode.size, 60)))) }
                return Ext2File(filesystem: self, inode: inode, inline: bytes, runs: nil, version: version)
            }
            let lastBlock = inode.size == 0 ? 0 : (inode.size - 1) / UInt64(blockSize)
            let runs = try mapBlocksLocked(raw: raw, inode: inode, from: 0, through: lastBlock,
                                           limit: Ext2File.maxMappedRuns, fs: fs)
            return Ext2File(filesystem: self, inode: inode, inline: nil, runs: runs, version: version)
        }
    }

    /// Refuses inodes the kernel's ext4_iget refuses, or whose size no read should walk:
    /// - i_size ≥ 2^63 (a negative loff_t: "bad i_size value", EFSCORRUPTED), or above the largest
    ///   file this filesystem can hold (the kernel's s_maxbytes, `ext4MaxFileSize`), where every
    ///   byte past the mapped blocks would read as zeros;
    /// - the inline-data flag on a filesystem without the inline_data feature (the kernel answers
    ///   EUCLEAN: the flag would make i_block's extent header read as file data).
    func checkFileShape(_ inode: Ext2Inode) throws {
        if inode.hasInlineData, superblock.incompatFeatures & Ext2Superblock.incompatInlineData == 0 {
            throw ImageError(path: device.displayName, structure: "inode \(inode.number)",
                             reason: "has the inline-data flag, but the filesystem has no inline_data feature",
                             errno: Ext2Superblock.errnoCorrupted)
        }
        guard inode.isRegular || inode.isSymlink else { return }
        let limit = superblock.maxFileSize(extents: inode.usesExtents)
        if inode.size > limit {
            throw ImageError(path: device.displayName, structure: "inode \(inode.number)",
                             reason: "i_size \(inode.size) exceeds the largest file this filesystem can hold (\(limit) bytes)",
                             errno: Ext2Superblock.errnoCorrupted)
        }
    }

    /// The target of symlink `number`, as bytes.
    package func readlink(_ number: UInt32) throws -> [UInt8] {
        let file = try openFile(number)
        guard file.inode.isSymlink else {
            throw ImageError(path: device.displayName, structure: "inode \(number)", reason: "not a symbolic link",
                             errno: .invalidArgument)
        }
        // PATH_MAX bounds a target; a bigger size field is damage.
        guard file.size <= 4096 else {
            throw ImageError(path: device.displayName, structure: "symlink inode \(number)",
                             reason: "target length \(file.size) exceeds 4096", errno: .ioError)
        }
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        let n = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        return Array(bytes.prefix(n))
    }

    /// Maps logical blocks `first...last` of a file, under the lock. Used per read for files
    /// too fragmented to keep a whole map of.
    func mapBlocks(inode: Ext2Inode, from first: UInt64, through last: UInt64) throws -> [BlockRun] {
        try withHandle { fs in
            let (raw, _) = try readInode(inode.number, fs: fs)
            return try mapBlocksLocked(raw: raw, inode: inode, from: first, through: last, limit: nil, fs: fs) ?? []
        }
    }

    /// Reads file data from the device outside the lock, after checking that the run points
    /// inside the filesystem (a damaged extent must not read another file's or no file's data).
    func readData(into buffer: UnsafeMutableRawBufferPointer, at host: UInt64, inode run: BlockRun) throws {
        let fsBytes = superblock.blocksCount * UInt64(blockSize)
        let (end, overflow) = host.addingReportingOverflow(UInt64(buffer.count))
        guard !overflow, end <= fsBytes else {
            throw ImageError(path: device.displayName, offset: host, structure: "extent",
                             reason: "data block \(run.physical) lies outside the filesystem (\(superblock.blocksCount) blocks)",
                             errno: .ioError)
        }
        try device.read(into: buffer, at: host)
    }

    /// Returns the runs covering `first...last`, or nil when more than `limit` would be needed.
    func mapBlocksLocked(raw: ext2_inode_large, inode: Ext2Inode, from first: UInt64, through last: UInt64,
                                 limit: Int?, fs: ext2_filsys) throws -> [BlockRun]? {
        final class Collector {
            var runs: [BlockRun] = []
            var first: UInt64 = 0, last: UInt64 = 0
            var limit = Int.max
            var overflow = false
            func add(logical: UInt64, physical: UInt64, count: UInt64, zeroed: Bool) {
                let lo = max(logical, first)
                let (hiEnd, o) = logical.addingReportingOverflow(count)
                let hi = min(o ? UInt64.max : hiEnd, last &+ 1)
                guard lo < hi else { return }
                let physicalStart = physical + (lo - logical)
                if var tail = runs.last, !tail.zeroed, !zeroed, tail.logical + tail.count == lo,
                   tail.physical + tail.count == physicalStart {
                    tail.count += hi - lo
                    runs[runs.count - 1] = tail
                    return
                }
                if runs.count >= limit { overflow = true; return }
                runs.append(BlockRun(logical: lo, count: hi - lo, physical: physicalStart, zeroed: zeroed))
            }
        }
        let collector = Collector()
        collector.first = first
        collector.last = last
        collector.limit = limit ?? Int.max
        var rawCopy = raw
        if inode.usesExtents {
            var handle: ext2_extent_handle_t?
            let rc = withUnsafeMutablePointer(to: &rawCopy) { p in
                p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { ext2fs_extent_open2(fs, inode.number, $0, &handle) }
            }
            try check(rc, "extent tree", inode: inode.number)
            defer { ext2fs_extent_free(handle) }
            var extent = ext2fs_extent()
            var op = Int32(EXT2_EXTENT_ROOT)
            // The tree walk visits each node at most twice; this cap only guards a loop in a
            // damaged tree that libext2fs's depth checks might miss.
            var steps = 0
            while steps < (1 << 26) {
                steps += 1
                let rc = ext2fs_extent_get(handle, op, &extent)
                if rc == EXT2_ET_EXTENT_NO_NEXT { break }
                try check(rc, "extent tree", inode: inode.number)
                op = Int32(EXT2_EXTENT_NEXT)
                guard extent.e_flags & UInt32(EXT2_EXTENT_FLAGS_LEAF) != 0,
                      extent.e_flags & UInt32(EXT2_EXTENT_FLAGS_SECOND_VISIT) == 0 else { continue }
                if extent.e_lblk > last { break }
                collector.add(logical: extent.e_lblk, physical: extent.e_pblk, count: UInt64(extent.e_len),
                              zeroed: extent.e_flags & UInt32(EXT2_EXTENT_FLAGS_UNINIT) != 0)
                if collector.overflow { return nil }
            }
        } else {
            // Block-mapped (ext2/ext3) files: ext2fs_block_iterate3 walks the indirect blocks.
            let rc = withExtendedLifetime(collector) {
                ext2fs_block_iterate3(fs, inode.number, Int32(BLOCK_FLAG_DATA_ONLY | BLOCK_FLAG_READ_ONLY), nil,
                                      { _, blocknr, blockcnt, _, _, priv in
                    guard let blocknr, let priv, blockcnt >= 0 else { return 0 }
                    let c = Unmanaged<Collector>.fromOpaque(priv).takeUnretainedValue()
                    if UInt64(blockcnt) > c.last { return BLOCK_ABORT }
                    c.add(logical: UInt64(blockcnt), physical: blocknr.pointee, count: 1, zeroed: false)
                    return c.overflow ? BLOCK_ABORT : 0
                }, Unmanaged.passUnretained(collector).toOpaque())
            }
            try check(rc, "block map", inode: inode.number)
            if collector.overflow { return nil }
        }
        return collector.runs
    }

    private func inlineData(_ raw: ext2_inode_large, inode: Ext2Inode, fs: ext2_filsys) throws -> [UInt8] {
        // Inline data lives in i_block (60 bytes) and the "system.data" xattr: at most an inode's size.
        let capacity = Int(superblock.inodeSize) + 60
        var buffer = [UInt8](repeating: 0, count: max(capacity, 64))
        var size: Int = 0
        var rawCopy = raw
        let rc = withUnsafeMutablePointer(to: &rawCopy) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { ip in
                buffer.withUnsafeMutableBytes { ext2fs_inline_data_size(fs, inode.number, &size) == 0 && size <= $0.count
                    ? ext2fs_inline_data_get(fs, inode.number, ip, $0.baseAddress, &size)
                    : errcode_t(EXT2_ET_INLINE_DATA_NO_SPACE) }
            }
        }
        try check(rc, "inline data", inode: inode.number)
        return Array(buffer.prefix(min(size, buffer.count)))
    }

    private func ext2fsIsFastSymlink(_ raw: ext2_inode_large) -> Bool {
        var copy = raw
        return withUnsafeMutablePointer(to: &copy) { p in
            p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { ext2fs_is_fast_symlink($0) != 0 }
        }
    }
}
