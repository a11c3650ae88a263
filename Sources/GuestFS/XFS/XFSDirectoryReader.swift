/// Reads one XFS directory in whichever of its forms it is ("XFS Algorithms & Data
/// Structures" §19 "Directories"), from what the inode reader decoded: the directory's data
/// fork (inline bytes, or its extent list — a B+tree directory's bmbt is already flattened
/// to extents, so B+tree directories are node directories here) and its size.
///
/// - shortform: the fork is local (XFSDirectoryShortform);
/// - block: one directory block at logical 0 with the hash index and tail inside it;
/// - leaf: data blocks, and one LEAF1 block at XFS_DIR2_LEAF_OFFSET;
/// - node: data blocks, a dabtree of LEAFN blocks rooted at XFS_DIR2_LEAF_OFFSET (and a
///   free index we never need to read).
///
/// Lookups follow the hash index (binary search in the leaf, descent through the dabtree), so
/// they read a few blocks whatever the directory's size. A damaged block fails this
/// directory's call with an ImageError (EIO), nothing else.
struct XFSDirectoryReader {
    let geometry: XFSGeometry
    let inode: UInt64
    let fork: XFSForkContents
    let size: UInt64
    let read: XFSBlockReader
    private let forkMap: Result<XFSForkMap, any Error>?

    init(geometry: XFSGeometry, inode: UInt64, fork: XFSForkContents, size: UInt64, read: @escaping XFSBlockReader) {
        self.geometry = geometry
        self.inode = inode
        self.fork = fork
        self.size = size
        self.read = read
        // The extent list is checked and indexed once per reader, so a caller that keeps the
        // reader (one per open directory, say) pays for it once.
        if case .extents(let extents) = fork {
            forkMap = Result { try XFSForkMap(extents: extents, geometry: geometry, read: read, owner: "directory inode \(inode)") }
        } else {
            forkMap = nil
        }
    }

    private var caseFold: Bool { geometry.asciiCI }
    private var fsbPerDirBlock: UInt64 { 1 << UInt64(geometry.dirBlockLog) }
    /// XFS_DIR2_LEAF_OFFSET in filesystem blocks (xfs_dir2_byte_to_da).
    private var leafStartBlock: UInt64 { XFSDirectoryFormat.leafSpaceByte >> UInt64(geometry.blockLog) }

    private func map(_ extents: [XFSExtent]) throws -> XFSForkMap {
        guard let forkMap else { return try XFSForkMap(extents: extents, geometry: geometry, read: read, owner: "directory inode \(inode)") }
        return try forkMap.get()
    }

    /// Every name in the directory except "." and "..", in on-disk (cookie) order.
    func entries() throws -> [XFSDirectoryEntry] {
        var out: [XFSDirectoryEntry] = []
        try forEachEntry { out.append($0); return true }
        return out
    }

    /// Calls `body` with each entry whose cookie is at least `cookie`, in cookie order, until
    /// it returns false: a directory listed page by page reads only the blocks each page
    /// needs, and never holds all of a huge directory's entries at once.
    func forEachEntry(from cookie: UInt64 = 0, _ body: (XFSDirectoryEntry) throws -> Bool) throws {
        switch fork {
        case .local(let bytes):
            for e in try XFSDirectoryShortform(bytes, inode: inode, geometry: geometry).entries where e.cookie >= cookie {
                guard try body(e) else { return }
            }
        case .extents(let extents):
            let shift = UInt64(geometry.blockLog) + UInt64(geometry.dirBlockLog) - UInt64(XFSDirectoryFormat.alignLog)
            try forEachDataBlock(try map(extents), from: cookie >> shift) { block in
                for (_, e) in try block.records() where e.cookie >= cookie && e.name != [0x2E] && e.name != [0x2E, 0x2E] {
                    guard try body(e) else { return false }
                }
                return true
            }
        }
    }

    /// The parent directory's inode ("..": in the shortform header, else the second entry of
    /// data block 0).
    func parent() throws -> UInt64 {
        switch fork {
        case .local(let bytes):
            return try XFSDirectoryShortform(bytes, inode: inode, geometry: geometry).parent
        case .extents(let extents):
            let block = try XFSDirectoryDataBlock(map: try map(extents), index: 0, inode: inode, geometry: geometry)
            guard let dotdot = try block.records().first(where: { $0.entry.name == [0x2E, 0x2E] }) else {
                throw block.bytes.damaged("directory block 0 has no \"..\" entry")
            }
            return dotdot.entry.inode
        }
    }

    /// The inode `name` names, or nil.
    func lookup(_ name: [UInt8]) throws -> UInt64? { try lookupEntry(name)?.inode }

    /// The entry `name` names (on ascii-ci filesystems an exact match first, else the first
    /// case-insensitive one, as xfs_dir_lookup), or nil. "." and ".." name this directory and
    /// its parent in every form (shortform stores neither).
    func lookupEntry(_ name: [UInt8]) throws -> XFSDirectoryEntry? {
        guard !name.isEmpty, name.count <= XFSDirectoryFormat.maxNameLength else { return nil }
        if name == [0x2E] { return XFSDirectoryEntry(name: name, inode: inode, fileType: geometry.hasFtype ? 2 : nil) }
        if name == [0x2E, 0x2E] { return XFSDirectoryEntry(name: name, inode: try parent(), fileType: geometry.hasFtype ? 2 : nil) }
        switch fork {
        case .local(let bytes):
            return try XFSDirectoryShortform(bytes, inode: inode, geometry: geometry).lookup(name, caseFold: caseFold)
        case .extents(let extents):
            let map = try map(extents)
            let hash = XFSNameHash.hash(name, caseFold: caseFold)
            var matcher = Matcher(name: name, caseFold: caseFold)
            // A block directory maps nothing in the leaf space (its index is inside its one
            // block, xfs_dir2_isblock); leaf and node directories keep their index there.
            guard map.extents.contains(where: { $0.fileOffset + $0.blockCount > leafStartBlock }) else {
                let block = try XFSDirectoryDataBlock(map: map, index: 0, inode: inode, geometry: geometry)
                guard block.isBlockForm else { throw block.bytes.damaged("directory has data blocks but no hash index") }
                var i = try lowerBound(block, hash)
                while i < block.leafCount, try block.leafEntry(i).hash == hash {
                    let address = try block.leafEntry(i).address
                    i += 1
                    guard address != 0 else { continue }
                    let (db, offset) = try locate(address, block.bytes)
                    guard db == 0 else { throw block.bytes.damaged("block directory's leaf points into directory block \(db)") }
                    if matcher.offer(try block.entry(at: offset).0) { break }
                }
                return matcher.found
            }
            var cache: [UInt64: XFSDirectoryDataBlock] = [:]
            let v5 = geometry.isV5
            var (leafBlock, leafBytes) = try XFSDaNode.findLeaf(root: leafStartBlock, hash: hash, v5: v5) { try loadIndexBlock(map, $0) }
            var visited: Set<UInt64> = []
            // Names sharing a hash may continue into the next leaves (xfs_da3_path_shift):
            // follow forw while the leaf ends on our hash; a leaf seen twice is a loop.
            while true {
                guard visited.insert(leafBlock).inserted else {
                    throw leafBytes.damaged("directory leaves loop back to logical block \(leafBlock)")
                }
                let leaf = try XFSDirectoryLeaf(leafBytes, v5: v5)
                var i = try leaf.lowerBound(hash)
                while i < leaf.count, try leaf.entry(i).hash == hash {
                    let address = try leaf.entry(i).address
                    i += 1
                    guard address != 0 else { continue }
                    let (db, offset) = try locate(address, leafBytes)
                    let block: XFSDirectoryDataBlock
                    if let cached = cache[db] { block = cached } else {
                        block = try XFSDirectoryDataBlock(map: map, index: db, inode: inode, geometry: geometry)
                        cache[db] = block
                    }
                    if matcher.offer(try block.entry(at: offset).0) { return matcher.found }
                }
                guard !leaf.isLeaf1, i == leaf.count, leaf.forward != 0 else { return matcher.found }
                leafBlock = UInt64(leaf.forward)
                leafBytes = try loadIndexBlock(map, leafBlock)
            }
        }
    }

    /// Collects the candidates a hash lookup finds: an exact match ends the search; on
    /// ascii-ci the first case-insensitive match is kept in case no exact one follows.
    private struct Matcher {
        let name: [UInt8]
        let caseFold: Bool
        var found: XFSDirectoryEntry?
        mutating func offer(_ e: XFSDirectoryEntry) -> Bool {
            if e.name == name { found = e; return true }
            if caseFold, found == nil, XFSNameHash.equal(e.name, name, caseFold: true) { found = e }
            return false
        }
    }

    private func lowerBound(_ block: XFSDirectoryDataBlock, _ hash: UInt32) throws -> Int {
        var lo = 0, hi = block.leafCount
        while lo < hi {
            let mid = (lo + hi) / 2
            if try block.leafEntry(mid).hash < hash { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The directory block index and byte offset a leaf address names
    /// (xfs_dir2_dataptr_to_db / _to_off).
    private func locate(_ address: UInt32, _ from: XFSBytes) throws -> (UInt64, Int) {
        let byte = UInt64(address) << UInt64(XFSDirectoryFormat.alignLog)
        let shift = UInt64(geometry.blockLog) + UInt64(geometry.dirBlockLog)
        return (byte >> shift, Int(byte & (UInt64(geometry.dirBlockSize) &- 1)))
    }

    /// Reads one directory-block-sized dabtree block (node or leaf) at logical block `block`,
    /// checking the v5 xfs_da3_blkinfo header.
    private func loadIndexBlock(_ map: XFSForkMap, _ block: UInt64) throws -> XFSBytes {
        let structure = "directory index block \(block) of inode \(inode)"
        guard block >= leafStartBlock, block - leafStartBlock < leafStartBlock else {
            throw ImageError(structure: structure, reason: "dabtree points outside the leaf space", errno: .ioError)
        }
        let (raw, fsb) = try map.readBlocks(block, count: UInt32(truncatingIfNeeded: fsbPerDirBlock), structure: structure)
        let b = XFSBytes(raw, structure: structure, deviceOffset: geometry.byteOffset(fsblock: fsb))
        if geometry.isV5 { try XFSMetadataHeader.da3Blkinfo.verify(b, fsblock: fsb, inode: inode, geometry: geometry) }
        return b
    }

    /// Visits each data block below XFS_DIR2_LEAF_OFFSET that the extent list maps, in order,
    /// from directory block `first`, until `body` returns false. Two directory blocks that
    /// start on one filesystem block are damage (else hostile extents could repeat one block's
    /// entries without end).
    private func forEachDataBlock(_ map: XFSForkMap, from first: UInt64, _ body: (XFSDirectoryDataBlock) throws -> Bool) throws {
        let shift = UInt64(geometry.dirBlockLog)
        var next = first
        var seen: Set<UInt64> = []
        for e in map.extents where e.fileOffset < leafStartBlock && e.fileOffset + e.blockCount > next << shift {
            let end = min(e.fileOffset + e.blockCount, leafStartBlock) // no overflow: XFSForkMap checked
            var db = max(e.fileOffset >> shift, next)
            let last = (end - 1) >> shift
            while db <= last {
                let block = try XFSDirectoryDataBlock(map: map, index: db, inode: inode, geometry: geometry)
                guard seen.insert(try map.physical(db << shift, structure: block.bytes.structure)).inserted else {
                    throw block.bytes.damaged("directory block \(db) is on the same disk block as an earlier one")
                }
                guard try body(block) else { return }
                db += 1
            }
            next = max(next, last + 1)
        }
    }
}
