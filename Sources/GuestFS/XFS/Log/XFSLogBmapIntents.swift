import GuestFSBlock
import GuestFSFilesystem

/// A bmap intent (BUI): map or unmap one range of an inode's data or attribute fork, logged by
/// reflink remaps, swapext and the unmap half of a remap over existing data (xfs_bmap_item.c;
/// xfs_log_format.h `struct xfs_bui_log_format` with one `struct xfs_map_extent`):
///
///     0 bui_type  2 bui_size  4 bui_nextents  8 bui_id
///     16 me_owner  24 me_startblock  32 me_startoff  40 me_len  44 me_flags
///
/// The kernel's pass 2 (xlog_recover_bui_commit_pass2) takes only the one-extent form, 48 bytes;
/// the range itself is checked when the intent is carried out (xfs_bui_validate).
struct XFSBmapIntent: Sendable, CustomStringConvertible {
    static let map: UInt32 = 1                  // XFS_BMAP_MAP
    static let unmap: UInt32 = 2                // XFS_BMAP_UNMAP
    static let typeMask: UInt32 = 0xFF          // XFS_BMAP_EXTENT_TYPE_MASK
    static let attrFork: UInt32 = 1 << 31       // XFS_BMAP_EXTENT_ATTR_FORK
    static let unwritten: UInt32 = 1 << 30      // XFS_BMAP_EXTENT_UNWRITTEN
    static let realtime: UInt32 = 1 << 29       // XFS_BMAP_EXTENT_REALTIME
    /// xfs_bui_log_format_sizeof(1): XFS_BUI_MAX_FAST_EXTENTS is 1.
    static let formatSize = 48
    /// XFS_MAX_BMBT_EXTLEN: the longest extent one record holds (21 bits).
    static let maxExtentLength: UInt64 = (1 << 21) - 1

    var owner: UInt64
    var startBlock: UInt64
    var startOffset: UInt64
    var length: UInt32
    var flags: UInt32

    var isMap: Bool { flags & Self.typeMask == Self.map }
    var isAttrFork: Bool { flags & Self.attrFork != 0 }

    init(_ r: XFSLogItemBytes) throws {
        let count = try r.u32(4)
        guard count == 1, r.count == Self.formatSize else {
            throw XFSLogReplayError("BUI of \(r.count) bytes with \(count) extents (the kernel logs one, in \(Self.formatSize) bytes)")
        }
        owner = try r.u64(16)
        startBlock = try r.u64(24)
        startOffset = try r.u64(32)
        length = try r.u32(40)
        flags = try r.u32(44)
    }

    var description: String {
        "\(isMap ? "map" : "unmap") \(isAttrFork ? "attr" : "data") fork of inode \(owner): file block \(startOffset)+\(length) at \(startBlock)"
    }

    /// xfs_bui_validate: a known operation and flags, a file range inside the 54-bit offset
    /// space, and for a map a data-device range one extent can hold.
    func validate() throws {
        let kind = flags & Self.typeMask
        guard kind == Self.map || kind == Self.unmap,
              flags & ~(Self.typeMask | Self.attrFork | Self.unwritten | Self.realtime) == 0 else {
            throw XFSLogReplayError("BUI (\(self)) has flags 0x\(String(flags, radix: 16))")
        }
        guard flags & Self.realtime == 0 else { throw XFSLogReplayError("BUI (\(self)) names the realtime device, which this filesystem lacks") }
        let (end, overflow) = startOffset.addingReportingOverflow(UInt64(length))
        guard length > 0, !overflow, end <= XFSBmapBtree.maxFileOffset + 1 else {
            throw XFSLogReplayError("BUI (\(self)) names a file range past the largest file offset")
        }
        if isMap {
            guard UInt64(length) <= Self.maxExtentLength else { throw XFSLogReplayError("BUI (\(self)) maps more blocks than one extent holds") }
        }
    }
}

/// Carrying out the bmap intents left without their done item, in the overlay, as the kernel
/// does at the end of recovery (xfs_log_recover.c xlog_recover_process_intents, then
/// xfs_bmap_item.c xfs_bmap_recover_work and xfs_bmap_finish_one): a map is
/// xfs_bmapi_remap (the range goes into the fork, merged with a contiguous neighbour as
/// xfs_bmap_add_extent_hole_real merges, i_nblocks grows), an unmap is __xfs_bunmapi with
/// XFS_BMAPI_REMAP (the range leaves the fork, splitting the extents at its ends, i_nblocks
/// shrinks; the blocks themselves are released by the refcount and EFI intents beside it).
///
/// Done for forks in extents format, which is where a fork lives until it outgrows the inode.
/// A fork in B+tree format, or one the change would push into B+tree format (the kernel
/// allocates a bmbt block then), is left as replayed and said so in `notReplayed`.
extension XFSLogReplay {
    func finishBmapIntents(dataBlocks: UInt64) throws {
        for intent in intents.unfinished {
            guard let bmap = intent.bmap else { continue }
            try bmap.validate()
            if let refusal = try finish(bmap, dataBlocks: dataBlocks) {
                if refusal.deferred {
                    report.deferredBmapIntents.append(bmap)
                } else {
                    report.notReplayed.append("BUI 0x\(String(intent.id, radix: 16)) (\(bmap)) not carried out: \(refusal.reason)")
                }
            } else {
                report.bmapIntentsFinished += 1
            }
        }
    }

    /// Applies one intent to its inode in the overlay; returns why it cannot, or nil once done.
    private func finish(_ bmap: XFSBmapIntent, dataBlocks: UInt64) throws -> (reason: String, deferred: Bool)? {
        let ino = bmap.owner
        guard let at = geometry.inodeOffset(ino, dataBlocks: dataBlocks) else {
            throw XFSLogReplayError("BUI (\(bmap)) names an inode the filesystem cannot have")
        }
        let inodeSize = Int(geometry.inodeSize)
        guard at <= overlay.size, UInt64(inodeSize) <= overlay.size - at else {
            throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) lies past the end of the device")
        }
        var dip = try overlay.readBytes(at: at, count: inodeSize)
        let b = XFSBytes(dip, structure: "inode \(ino)", deviceOffset: at)
        // xlog_recover_iget: the inode must be a live one.
        guard try b.u16(0) == XFSInode.magic, try b.u16(2) != 0 else {
            throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) is not an allocated inode")
        }
        let version = try b.u8(4)
        if geometry.isV5 {
            guard version == 3, XFSChecksum.verify(dip, crcOffset: XFSInode.crcOffset), try b.u64(152) == ino else {
                throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) fails its CRC or self-check")
            }
        }
        let flags2 = version == 3 ? try b.u64(120) : 0
        let nrext64 = flags2 & XFSInode.flags2Nrext64 != 0
        let literalStart = version == 3 ? XFSInode.v3CoreSize : XFSInode.crcOffset
        let literalSize = inodeSize - literalStart
        let forkOffset = Int(try b.u8(82)) * 8
        guard literalSize > 0, forkOffset < literalSize else {
            throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) has fork offset \(forkOffset)")
        }
        let forkStart: Int, forkSize: Int, formatByte: Int
        if bmap.isAttrFork {
            guard forkOffset != 0 else { throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) has no attribute fork") }
            (forkStart, forkSize, formatByte) = (literalStart + forkOffset, literalSize - forkOffset, 83)
        } else {
            (forkStart, forkSize, formatByte) = (literalStart, forkOffset == 0 ? literalSize : forkOffset, 5)
        }
        guard let format = XFSInode.Format(rawValue: try b.u8(formatByte)) else {
            throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) fork format \(try b.u8(formatByte)) is unknown")
        }
        guard format == .extents else { return ("the fork is in \(format) format", format == .btree) }
        // xfs_format.h: the 64-bit data extent count sits in di_big_nextents with NREXT64.
        let countOffset: Int, countWidth: Int
        switch (bmap.isAttrFork, nrext64) {
        case (false, true): (countOffset, countWidth) = (24, 8)
        case (false, false): (countOffset, countWidth) = (76, 4)
        case (true, true): (countOffset, countWidth) = (76, 4)
        case (true, false): (countOffset, countWidth) = (80, 2)
        }
        let count = countWidth == 8 ? try b.u64(countOffset) : countWidth == 4 ? UInt64(try b.u32(countOffset)) : UInt64(try b.u16(countOffset))
        let fork = try b.slice(forkStart, forkSize)
        var extents = try XFSBmapBtree.extents(fork: fork, format: .extents, extentCount: count, inode: ino,
                                               forkName: bmap.isAttrFork ? "attribute" : "data", geometry: geometry,
                                               readBlock: { _ in [] })
        let blocks = try b.u64(64)
        let newBlocks: UInt64
        if bmap.isMap {
            guard let merged = Self.map(bmap, into: &extents) else { return ("the range is already mapped", false) }
            let (sum, overflow) = blocks.addingReportingOverflow(merged)
            guard !overflow else { throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) block count overflows") }
            newBlocks = sum
        } else {
            let removed = Self.unmap(bmap, from: &extents)
            guard removed <= blocks else { throw XFSLogReplayError("BUI (\(bmap)): inode \(ino) counts \(blocks) blocks, fewer than it unmaps") }
            newBlocks = blocks - removed
        }
        guard extents.count <= forkSize / 16 else { return ("\(extents.count) extents would not fit the inode (the kernel converts the fork to a B+tree)", true) }
        try XFSBmapBtree.validate(extents, b: XFSBytes(fork, structure: "inode \(ino) fork after BUI", deviceOffset: at), geometry: geometry)
        // The fork's records, the rest of the old ones cleared; the counts; the CRC.
        let oldBytes = Int(min(count, UInt64(forkSize / 16))) * 16
        for i in 0 ..< max(oldBytes, extents.count * 16) { dip[forkStart + i] = 0 }
        for (i, e) in extents.enumerated() { Self.encode(e, into: &dip, at: forkStart + i * 16) }
        Self.putBE(&dip, countOffset, UInt64(extents.count), width: countWidth)
        Self.putBE(&dip, 64, newBlocks, width: 8)
        if geometry.isV5 { XFSLogReplay.stampInodeCRC(&dip, at: 0, size: inodeSize) }
        try overlay.writeBytes(dip, at: at)
        return nil
    }

    /// xfs_bmapi_remap into a hole: the new extent merges with the left and right neighbours
    /// it is contiguous with (same state, adjacent in the file and on disk, within
    /// XFS_MAX_BMBT_EXTLEN), as xfs_bmap_add_extent_hole_real does. Returns the blocks mapped,
    /// or nil when the range overlaps a mapping (the kernel only asserts a hole there).
    static func map(_ bmap: XFSBmapIntent, into extents: inout [XFSExtent]) -> UInt64? {
        let new = XFSExtent(fileOffset: bmap.startOffset, startBlock: bmap.startBlock, blockCount: UInt64(bmap.length),
                            unwritten: bmap.flags & XFSBmapIntent.unwritten != 0)
        let end = new.fileOffset + new.blockCount    // validated: under 2^54
        let i = extents.firstIndex { $0.fileOffset >= end } ?? extents.count
        if i > 0, extents[i - 1].fileOffset + extents[i - 1].blockCount > new.fileOffset { return nil }
        let limit = XFSBmapIntent.maxExtentLength
        let leftContig = i > 0 && {
            let l = extents[i - 1]
            return l.fileOffset + l.blockCount == new.fileOffset && l.startBlock &+ l.blockCount == new.startBlock
                && l.unwritten == new.unwritten && l.blockCount + new.blockCount <= limit
        }()
        let rightContig = i < extents.count && {
            let r = extents[i]
            return r.fileOffset == end && new.startBlock &+ new.blockCount == r.startBlock && r.unwritten == new.unwritten
                && r.blockCount + new.blockCount + (leftContig ? extents[i - 1].blockCount : 0) <= limit
        }()
        switch (leftContig, rightContig) {
        case (true, true):
            extents[i - 1].blockCount += new.blockCount + extents[i].blockCount
            extents.remove(at: i)
        case (true, false):
            extents[i - 1].blockCount += new.blockCount
        case (false, true):
            extents[i].fileOffset = new.fileOffset
            extents[i].startBlock = new.startBlock
            extents[i].blockCount += new.blockCount
        case (false, false):
            extents.insert(new, at: i)
        }
        return new.blockCount
    }

    /// __xfs_bunmapi over the whole range: extents inside it go, extents across its ends are
    /// cut there (one across both ends splits in two). Returns the blocks unmapped.
    static func unmap(_ bmap: XFSBmapIntent, from extents: inout [XFSExtent]) -> UInt64 {
        let start = bmap.startOffset, end = bmap.startOffset + UInt64(bmap.length)   // validated: under 2^54
        var out: [XFSExtent] = []
        out.reserveCapacity(extents.count + 1)
        var removed: UInt64 = 0
        for e in extents {
            let eEnd = e.fileOffset + e.blockCount
            guard e.fileOffset < end, eEnd > start else { out.append(e); continue }
            if e.fileOffset < start {
                out.append(XFSExtent(fileOffset: e.fileOffset, startBlock: e.startBlock, blockCount: start - e.fileOffset, unwritten: e.unwritten))
            }
            removed += min(eEnd, end) - max(e.fileOffset, start)
            if eEnd > end {
                out.append(XFSExtent(fileOffset: end, startBlock: e.startBlock &+ (end - e.fileOffset), blockCount: eEnd - end, unwritten: e.unwritten))
            }
        }
        extents = out
        return removed
    }

    /// xfs_bmbt_disk_set_all: the inverse of XFSBmapBtree.decodeRecord.
    static func encode(_ e: XFSExtent, into b: inout [UInt8], at o: Int) {
        let l0 = (e.unwritten ? UInt64(1) << 63 : 0) | (e.fileOffset & ((1 << 54) - 1)) << 9 | (e.startBlock >> 43) & 0x1FF
        let l1 = e.startBlock << 21 | (e.blockCount & ((1 << 21) - 1))
        putBE(&b, o, l0, width: 8)
        putBE(&b, o + 8, l1, width: 8)
    }

    static func putBE(_ b: inout [UInt8], _ o: Int, _ v: UInt64, width: Int) {
        for i in 0 ..< width { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(width - 1 - i))) }
    }
}
