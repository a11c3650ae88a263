import GuestFSBlock
import GuestFSFilesystem

/// Fork mappings: the packed extent record and the block-map B+tree (xfs_format.h
/// `xfs_bmbt_rec`, `xfs_bmdr_block`, `struct xfs_btree_block` long form; "XFS Algorithms &
/// Data Structures" §16 "Data Extents" and §16.3 "B+tree Extent List"), walked to one sorted
/// extent list. Every block is verified (magic, level, record count; on v5 CRC, blkno, owner
/// and UUID), the depth is bounded, and a block met twice is a loop.
enum XFSBmapBtree {
    /// "BMAP" (XFS_BMAP_MAGIC, v4) and "BMA3" (XFS_BMAP_CRC_MAGIC, v5).
    static let magicV4: UInt32 = 0x424D_4150
    static let magicV5: UInt32 = 0x424D_4133
    /// XFS_BTREE_LBLOCK_LEN and XFS_BTREE_LBLOCK_CRC_LEN.
    static let headerV4 = 24
    static let headerV5 = 72
    static let crcOffsetV5 = 64
    /// Deeper than any real tree (XFS_BM_MAXLEVELS is 9 with 32-bit extent counts, a few more
    /// with nrext64).
    static let maxLevels = 12
    /// No fork is mapped past this many extents (about 32 MiB of extent list).
    static let maxExtents = 1 << 20
    /// xfs_bmbt_irec limits: 54-bit file offsets, 52-bit block numbers, 21-bit lengths.
    static let maxFileOffset: UInt64 = (1 << 54) - 1

    /// Decodes one 16-byte record (xfs_bmbt_disk_get_all): bit 127 the unwritten flag, 54 bits
    /// of file offset, 52 of start block, 21 of length.
    static func decodeRecord(_ b: XFSBytes, at offset: Int) throws -> XFSExtent {
        let l0 = try b.u64(offset), l1 = try b.u64(offset + 8)
        return XFSExtent(fileOffset: (l0 & ((1 << 63) - 1)) >> 9,
                         startBlock: (l0 & 0x1FF) << 43 | l1 >> 21,
                         blockCount: l1 & ((1 << 21) - 1),
                         unwritten: l0 >> 63 != 0)
    }

    /// The fork's mapping for a decoded inode fork: records in the fork (extents format) or the
    /// tree rooted there (btree format). `extentCount` is the inode's count for the fork.
    static func extents(fork: [UInt8], format: XFSInode.Format, extentCount: UInt64, inode: UInt64, forkName: String,
                        geometry: XFSGeometry, readBlock: (UInt64) throws -> [UInt8]) throws -> [XFSExtent] {
        let b = XFSBytes(fork, structure: "inode \(inode) \(forkName) fork")
        var out: [XFSExtent] = []
        switch format {
        case .extents:
            guard extentCount <= UInt64(fork.count / 16) else { throw b.damaged("\(extentCount) extents do not fit") }
            out.reserveCapacity(Int(extentCount))
            for i in 0 ..< Int(extentCount) { out.append(try decodeRecord(b, at: i * 16)) }
        case .btree:
            // xfs_bmdr_block: level, numrecs, then keys and pointers sized for the whole fork.
            let level = Int(try b.u16(0)), count = Int(try b.u16(2))
            let maxRecords = (fork.count - 4) / 16
            guard level >= 1, level < maxLevels, count >= 1, count <= maxRecords else {
                throw b.damaged("B+tree root (level \(level), \(count) records) is invalid")
            }
            var walk = Walk(geometry: geometry, inode: inode, forkName: forkName)
            for i in 0 ..< count {
                try walk.visit(pointer: try b.u64(4 + maxRecords * 8 + i * 8), level: level - 1, into: &out, readBlock: readBlock)
            }
        case .local, .device:
            throw b.damaged("has no extent map (format \(format))")
        }
        try validate(out, b: b, geometry: geometry)
        if extentCount != UInt64(out.count) {
            throw b.damaged("holds \(out.count) extents where the inode counts \(extentCount)")
        }
        return out
    }

    /// Each extent within one AG and the filesystem (xfs_bmap_validate_extent), and the list in
    /// file order without overlaps, so that lookups can bisect it.
    static func validate(_ extents: [XFSExtent], b: XFSBytes, geometry: XFSGeometry) throws {
        var end: UInt64 = 0
        let agMask = (UInt64(1) << UInt64(geometry.agBlockLog)) - 1
        for (i, e) in extents.enumerated() {
            let (last, overflow) = e.fileOffset.addingReportingOverflow(e.blockCount)
            // Byte offsets of the whole extent must fit 64 bits too (file reads shift by the block log).
            guard e.blockCount > 0, !overflow, last <= maxFileOffset + 1, last <= UInt64.max >> UInt64(geometry.blockLog) else {
                throw b.damaged("extent \(i) (file block \(e.fileOffset), \(e.blockCount) blocks) is invalid")
            }
            guard e.fileOffset >= end else {
                throw b.damaged("extent \(i) at file block \(e.fileOffset) overlaps or precedes the one before it")
            }
            guard geometry.byteOffset(fsblock: e.startBlock) != nil,
                  (e.startBlock & agMask) + e.blockCount <= UInt64(geometry.agBlocks) else {
                throw b.damaged("extent \(i) (block \(e.startBlock), \(e.blockCount) blocks) lies outside its AG")
            }
            end = last
        }
    }

    /// A depth-first walk over long-format bmbt blocks.
    struct Walk {
        let geometry: XFSGeometry
        let inode: UInt64
        let forkName: String
        var visited: Set<UInt64> = []

        mutating func visit(pointer: UInt64, level: Int, into out: inout [XFSExtent],
                            readBlock: (UInt64) throws -> [UInt8]) throws {
            let name = "inode \(inode) \(forkName) fork bmbt block \(pointer)"
            guard let daddr = geometry.daddr(fsblock: pointer) else {
                throw XFSBytes([], structure: name).damaged("pointer lies outside the filesystem")
            }
            guard visited.insert(pointer).inserted else {
                throw XFSBytes([], structure: name, deviceOffset: daddr << 9).damaged("is met twice (a loop in the B+tree)")
            }
            let raw = try readBlock(pointer)
            let b = XFSBytes(raw, structure: name, deviceOffset: daddr << 9)
            let header: Int
            if geometry.isV5 {
                guard try b.u32(0) == magicV5 else { throw b.damaged("bad magic (not BMA3)") }
                guard XFSChecksum.verify(raw, crcOffset: crcOffsetV5) else { throw b.damaged("CRC mismatch") }
                guard try b.u64(24) == daddr else { throw b.damaged("blkno \(try b.u64(24)) is not the block's") }
                guard try b.slice(40, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
                guard try b.u64(56) == inode else { throw b.damaged("owner \(try b.u64(56)) is not the inode") }
                header = headerV5
            } else {
                guard try b.u32(0) == magicV4 else { throw b.damaged("bad magic (not BMAP)") }
                header = headerV4
            }
            let blockLevel = Int(try b.u16(4)), count = Int(try b.u16(6))
            let maxRecords = (raw.count - header) / 16
            guard blockLevel == level else { throw b.damaged("level \(blockLevel) where \(level) was expected") }
            guard count >= 1, count <= maxRecords else { throw b.damaged("\(count) records (at most \(maxRecords))") }
            if level == 0 {
                guard out.count + count <= maxExtents else {
                    throw b.damaged("the fork maps more than \(maxExtents) extents")
                }
                for i in 0 ..< count { out.append(try decodeRecord(b, at: header + i * 16)) }
            } else {
                for i in 0 ..< count {
                    try visit(pointer: try b.u64(header + maxRecords * 8 + i * 8), level: level - 1, into: &out, readBlock: readBlock)
                }
            }
        }
    }
}

extension XFSExtent {
    /// The index of the extent that maps file block `block`, or of the first one after it
    /// (`extents.count` when none), in a validated, sorted list.
    static func firstIndex(in extents: [XFSExtent], endingAfter block: UInt64) -> Int {
        var lo = 0, hi = extents.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if extents[mid].fileOffset + extents[mid].blockCount <= block { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
