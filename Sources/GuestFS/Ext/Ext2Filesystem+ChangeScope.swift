import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

/// Which inodes the bytes that changed between two opens of one ext filesystem can touch
/// (`imagemount diff`'s fast path; the protocol is Filesystem/ChangeScope.swift).
///
/// What the walk shows of a node (ext4 disk layout, "Index Nodes", "Extended Attributes",
/// "Directory Entries", "Extent Tree") comes from: its slot in an inode table (status, the
/// extent root or block map, inline data, in-inode xattrs), its xattr block (`i_file_acl`),
/// and for a directory its data blocks and the extent tree or indirect blocks that map them
/// (for a file's contents the same, when asked). The superblock and group descriptors say
/// where the inode tables are; their other fields (free counts, times, checksums) change on
/// every write but no listing or status depends on them. So, with the same layout on both
/// sides (checked field by field) and no journal replayed on either, a node whose slot, xattr
/// block and (for directories) mapped blocks all lie outside the changed blocks reads the
/// same on both sides. Features that keep a node's data elsewhere (xattr values in their own
/// inodes, EA_INODE) make the driver answer "cannot tell".
extension Ext2Filesystem {
    /// EXT4_FEATURE_INCOMPAT_EA_INODE (ext4 disk layout, "The Super Block").
    static let incompatEAInode: UInt32 = 0x400
    /// EXT4_EXTENTS_FL and EXT4_INLINE_DATA_FL (ext4 disk layout, "i_flags").
    static let extentsFlag: UInt32 = 0x80000
    static let inlineDataFlag: UInt32 = 0x1000_0000
    /// Most bytes of directory blocks `changeScope` reads at a time.
    static let listingReadBytes = 256 << 10

    /// The layout facts both opens must share for block numbers to mean the same thing.
    struct Layout: Equatable {
        var blockSize: Int
        var fields: [UInt64]
        var inodeTables: [UInt64]
        var uuid: [UInt8]
    }

    func layout() throws -> Layout {
        try withHandle { fs in
            let s = fs.pointee.`super`.pointee
            let groups = Int(fs.pointee.group_desc_count)
            var tables: [UInt64] = []
            tables.reserveCapacity(groups)
            for g in 0..<groups { tables.append(ext2fs_inode_table_loc(fs, dgrp_t(g))) }
            let uuid = withUnsafeBytes(of: s.s_uuid) { Array($0) }
            return Layout(blockSize: blockSize,
                          fields: [UInt64(s.s_inodes_count), UInt64(s.s_blocks_count), UInt64(s.s_blocks_count_hi),
                                   UInt64(s.s_first_data_block), UInt64(s.s_log_block_size), UInt64(s.s_blocks_per_group),
                                   UInt64(s.s_inodes_per_group), UInt64(s.s_inode_size), UInt64(s.s_first_ino),
                                   UInt64(s.s_feature_compat), UInt64(s.s_feature_incompat), UInt64(s.s_feature_ro_compat),
                                   UInt64(s.s_desc_size), UInt64(s.s_checksum_seed), UInt64(groups),
                                   UInt64(fs.pointee.inode_blocks_per_group)],
                          inodeTables: tables, uuid: uuid)
        }
    }

    /// Sorted, disjoint closed ranges of block numbers, asked "does [lo, hi] meet one?".
    struct BlockSet {
        var ranges: [(lo: UInt64, hi: UInt64)]

        init(bytes: [Range<UInt64>], blockSize: Int) {
            let bs = UInt64(blockSize)
            var out: [(lo: UInt64, hi: UInt64)] = []
            for r in bytes.sorted(by: { $0.lowerBound < $1.lowerBound }) where !r.isEmpty {
                let lo = r.lowerBound / bs, hi = (r.upperBound - 1) / bs
                if let last = out.last, lo <= last.hi &+ 1 {
                    out[out.count - 1].hi = max(last.hi, hi)
                } else {
                    out.append((lo, hi))
                }
            }
            ranges = out
        }

        var isEmpty: Bool { ranges.isEmpty }

        /// Whether any block in [lo, lo + count) is in the set (count 0 meets nothing).
        func meets(_ lo: UInt64, count: UInt64) -> Bool {
            guard count > 0 else { return false }
            let (end, o) = lo.addingReportingOverflow(count - 1)
            let hi = o ? UInt64.max : end
            // The first range whose end is at or past lo.
            var a = 0, b = ranges.count
            while a < b {
                let mid = (a + b) / 2
                if ranges[mid].hi < lo { a = mid + 1 } else { b = mid }
            }
            return a < ranges.count && ranges[a].lo <= hi
        }
    }

    package func changeScope(comparedWith base: Ext2Filesystem, differing: [Range<UInt64>], content: Bool,
                             reach: Set<UInt64>) throws -> FilesystemChangeScope? {
        // A journal replayed in memory, a backup superblock, a dirty state: either side's
        // open changed what it reads from what its device holds.
        guard journalReplay == nil, base.journalReplay == nil, warnings.isEmpty, base.warnings.isEmpty,
              device.size == base.device.size else { return nil }
        let mine = try layout()
        guard mine == (try base.layout()) else { return nil }
        if UInt32(truncatingIfNeeded: mine.fields[10]) & Self.incompatEAInode != 0 { return nil }
        let changed = BlockSet(bytes: differing, blockSize: blockSize)
        if changed.isEmpty { return FilesystemChangeScope(nodes: [], directories: []) }

        var nodes = Set<UInt64>()
        let inodesPerGroup = mine.fields[6], inodeSize = mine.fields[7], tableBlocks = mine.fields[15]
        guard inodeSize >= UInt64(Ext2TableScan.minimumInodeSize), inodeSize <= UInt64(blockSize) else { return nil }
        // Inode slots whose bytes changed (found by byte, not by table block: the caller
        // narrows the changed ranges to 512-byte units, so a slot outside them reads the same).
        let changedBytes = BlockSet(bytes: differing, blockSize: 1)
        let bs = UInt64(blockSize)
        for (group, table) in mine.inodeTables.enumerated() where changed.meets(table, count: tableBlocks) {
            let (tableStart, overflow) = table.multipliedReportingOverflow(by: bs)
            guard !overflow else { return nil }
            for index in 0..<inodesPerGroup {
                let (slotStart, o) = tableStart.addingReportingOverflow(index &* inodeSize)
                guard !o else { return nil }
                if changedBytes.meets(slotStart, count: inodeSize) { nodes.insert(UInt64(group) * inodesPerGroup + index + 1) }
            }
        }
        // Every inode slot, for its xattr block and (directories, and files when contents
        // matter) the blocks that map it; read straight from the tables (Ext2ChangeScopeScan.swift).
        var directories: [UInt32] = []
        // The unchanged directories, with their extents when the root in the slot maps them all.
        var unchangedDirectories: [(ino: UInt32, extents: [(start: UInt64, count: UInt64)]?)] = []
        let deviceBlocks = device.size / bs
        let scanned: Bool = try withHandle { fs in
            try Ext2TableScan.forEachSlot(device: device, blockSize: blockSize, inodeTables: mine.inodeTables,
                                          inodesPerGroup: inodesPerGroup, inodeSize: inodeSize, tableBlocks: tableBlocks) { slot in
                if slot.mode == 0 && slot.links == 0 && slot.xattrBlock & 0xFFFF_FFFF == 0 { return }
                let ino = slot.ino
                var met = false
                // 0 is "no xattr block" (block 0 holds the boot sector and superblock).
                if slot.xattrBlock != 0, changed.meets(slot.xattrBlock, count: 1) || changed.meets(slot.xattrBlock & 0xFFFF_FFFF, count: 1) {
                    met = true
                }
                let mode = UInt32(slot.mode) & 0xF000
                let isDirectory = mode == 0x4000
                if isDirectory { directories.append(ino) }
                var extents: [(start: UInt64, count: UInt64)]? = nil
                if !met, isDirectory || (content && mode == 0x8000), slot.flags & Self.inlineDataFlag == 0,
                   !nodes.contains(UInt64(ino)) {
                    // A root with no index level maps everything itself: its extents are the
                    // whole answer, with no libext2fs handle to open.
                    extents = Ext2TableScan.rootExtents(of: slot, deviceBlocks: deviceBlocks)
                    if let extents {
                        met = extents.contains { changed.meets($0.start, count: $0.count) }
                    } else {
                        met = try self.mapMeets(changed, ino: ino, raw: slot.raw, fs: fs)
                    }
                }
                if met {
                    nodes.insert(UInt64(ino))
                } else if isDirectory, !nodes.contains(UInt64(ino)) {
                    unchangedDirectories.append((ino, extents))
                }
            }
        }
        guard scanned else { return nil }

        // Who names whom: the listings of the unchanged directories, which read the same on
        // both sides (a changed directory is in `nodes`, so the walk enters it anyway). Any
        // entry counts (more parents than the listing shows cost only time), and a directory
        // that cannot be read means "cannot tell" (the listing's salvage of a damaged block is
        // not repeated here). Directories mapped by their extent root are read straight from
        // the device, sorted by block; the others through libext2fs's iteration, the one the
        // listing uses (Ext2Directory.swift).
        let targets = nodes.union(reach)
        final class Names {
            var wanted: Set<UInt32> = []
            var parents: [UInt64: [UInt64]] = [:]
            var dir: UInt64 = 0
            func add(_ child: UInt32) {
                if child != 0, wanted.contains(child) { parents[UInt64(child), default: []].append(dir) }
            }
        }
        let names = Names()
        names.wanted = Set(directories)
        for t in targets { if let n = UInt32(exactly: t) { names.wanted.insert(n) } }
        // Pieces of at most `runBlocks` blocks, each of one directory's extent, sorted by
        // block so that pieces back to back on the disk are read in one go (mke2fs -d and
        // the kernel put small directories' blocks close together).
        let runBlocks = UInt64(max(1, Self.listingReadBytes / blockSize))
        var direct: [(start: UInt64, count: UInt64, dir: UInt32)] = []
        var directBlocks: UInt64 = 0
        var iterated: [UInt32] = []
        for (ino, extents) in unchangedDirectories {
            // The total is bounded by the device (each extent is inside it), unless extents
            // of several directories overlap, as only a damaged image has them.
            guard let extents, directBlocks + extents.reduce(0, { $0 + $1.count }) <= deviceBlocks else {
                iterated.append(ino)
                continue
            }
            for e in extents {
                var at = e.start
                while at < e.start + e.count {
                    let n = min(runBlocks, e.start + e.count - at)
                    direct.append((at, n, ino))
                    at += n
                }
                directBlocks += e.count
            }
        }
        unchangedDirectories = []
        direct.sort { $0.start < $1.start }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(runBlocks) * blockSize, alignment: 16)
        defer { buffer.deallocate() }
        var unparsed = Set<UInt32>()
        var i = 0
        while i < direct.count {
            let first = direct[i].start
            var end = first, j = i
            while j < direct.count, direct[j].start == end, end - first + direct[j].count <= runBlocks {
                end += direct[j].count
                j += 1
            }
            try device.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int((end - first) * bs)]), at: first * bs)
            for piece in direct[i..<j] {
                names.dir = UInt64(piece.dir)
                for b in 0..<piece.count {
                    let at = Int((piece.start - first + b) * bs)
                    let block = UnsafeRawBufferPointer(rebasing: buffer[at..<(at + blockSize)])
                    if !Ext2TableScan.entryInodes(block, names.add), unparsed.insert(piece.dir).inserted { iterated.append(piece.dir) }
                }
            }
            i = j
        }
        let listed: Bool = try withHandle { fs in
            for dir in iterated {
                names.dir = UInt64(dir)
                let rc = withExtendedLifetime(names) {
                    ext2fs_dir_iterate2(fs, dir, Int32(DIRENT_FLAG_INCLUDE_EMPTY), nil, { _, kind, dirent, _, _, _, priv in
                        guard let dirent, let priv else { return DIRENT_ABORT }
                        // "." and "..", which the listing leaves out too.
                        if kind == DIRENT_DOT_FILE || kind == DIRENT_DOT_DOT_FILE { return 0 }
                        Unmanaged<Names>.fromOpaque(priv).takeUnretainedValue().add(dirent.pointee.inode)
                        return 0
                    }, Unmanaged.passUnretained(names).toOpaque())
                }
                if rc != 0 { return false }
            }
            return true
        }
        guard listed else { return nil }
        let parents = names.parents
        var lead = Set<UInt64>()
        var queue = Array(targets)
        while let next = queue.popLast() {
            for p in parents[next] ?? [] where lead.insert(p).inserted { queue.append(p) }
        }
        return FilesystemChangeScope(nodes: nodes, directories: lead)
    }

    /// Whether any block that maps inode `ino` (extent tree nodes and leaves, or the block
    /// map with its indirect blocks) is in `changed`. A map that cannot be read counts as met.
    func mapMeets(_ changed: BlockSet, ino: ext2_ino_t, raw: ext2_inode_large, fs: ext2_filsys) throws -> Bool {
        var copy = raw
        if raw.i_flags & Self.extentsFlag != 0 {
            var handle: ext2_extent_handle_t?
            let rc = withUnsafeMutablePointer(to: &copy) { p in
                p.withMemoryRebound(to: ext2_inode.self, capacity: 1) { ext2fs_extent_open2(fs, ino, $0, &handle) }
            }
            guard rc == 0, let handle else { return true }
            defer { ext2fs_extent_free(handle) }
            var extent = ext2fs_extent()
            var op = Int32(EXT2_EXTENT_ROOT)
            var steps = 0
            while steps < (1 << 24) {
                steps += 1
                let rc = ext2fs_extent_get(handle, op, &extent)
                if rc == EXT2_ET_EXTENT_NO_NEXT { return false }
                guard rc == 0 else { return true }
                op = Int32(EXT2_EXTENT_NEXT)
                if extent.e_flags & UInt32(EXT2_EXTENT_FLAGS_SECOND_VISIT) != 0 { continue }
                let leaf = extent.e_flags & UInt32(EXT2_EXTENT_FLAGS_LEAF) != 0
                if changed.meets(extent.e_pblk, count: leaf ? UInt64(extent.e_len) : 1) { return true }
            }
            return true
        }
        final class Probe {
            var changed: BlockSet
            var met = false
            init(_ changed: BlockSet) { self.changed = changed }
        }
        let probe = Probe(changed)
        let rc = withExtendedLifetime(probe) {
            ext2fs_block_iterate3(fs, ino, Int32(BLOCK_FLAG_READ_ONLY), nil, { _, blocknr, _, _, _, priv in
                guard let blocknr, let priv else { return BLOCK_ABORT }
                let p = Unmanaged<Probe>.fromOpaque(priv).takeUnretainedValue()
                if p.changed.meets(blocknr.pointee, count: 1) { p.met = true; return BLOCK_ABORT }
                return 0
            }, Unmanaged.passUnretained(probe).toOpaque())
        }
        return rc != 0 || probe.met
    }
}

extension ExtFilesystem: ChangeScopingFilesystem {
    package func changeScope(comparedWith base: any GuestFilesystem, differing: [Range<UInt64>], content: Bool,
                             reach: Set<UInt64>) throws -> FilesystemChangeScope? {
        guard let other = base as? ExtFilesystem else { return nil }
        return try ext.changeScope(comparedWith: other.ext, differing: differing, content: content, reach: reach)
    }
}
