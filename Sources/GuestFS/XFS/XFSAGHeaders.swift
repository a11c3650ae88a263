import GuestFSBlock
import GuestFSFilesystem

/// The allocation group headers this reader uses: the AGF (free space, xfs_format.h
/// `struct xfs_agf`) in the AG's second sector and the AGI (inodes, `struct xfs_agi`) in its
/// third ("XFS Algorithms & Data Structures" §13 "AG Free Space Management", §14 "AG Inode
/// Management"). On v5 each is verified as xfs_agf_verify/xfs_agi_verify do: CRC over the
/// sector, magic, sequence number, UUID.
struct XFSAGFreeSpace: Sendable, Equatable {
    /// "XAGF" (XFS_AGF_MAGIC).
    static let magic: UInt32 = 0x5841_4746
    static let crcOffset = 216

    var length: UInt32
    var freeBlocks: UInt32
    var freeListCount: UInt32
    /// agf_btreeblks: blocks in the free-space (and rmap) btrees beyond their roots.
    var btreeBlocks: UInt32
    var rmapBlocks: UInt32

    init(_ raw: [UInt8], ag: UInt32, geometry: XFSGeometry, deviceOffset: UInt64) throws {
        let b = XFSBytes(raw, structure: "AGF \(ag)", deviceOffset: deviceOffset)
        guard try b.u32(0) == Self.magic else { throw b.damaged("bad magic (not XAGF)") }
        guard try b.u32(8) == ag else { throw b.damaged("sequence number \(try b.u32(8)) is not the AG's") }
        if geometry.isV5 {
            guard XFSChecksum.verify(raw, crcOffset: Self.crcOffset) else { throw b.damaged("CRC mismatch") }
            guard try b.slice(64, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
        }
        length = try b.u32(12)
        freeBlocks = try b.u32(52)
        freeListCount = try b.u32(48)
        btreeBlocks = try b.u32(60)
        rmapBlocks = geometry.isV5 ? try b.u32(80) : 0
        guard length <= geometry.agBlocks, freeBlocks <= length, freeListCount <= length else {
            throw b.damaged("counts (length \(length), free \(freeBlocks), free list \(freeListCount)) exceed the AG")
        }
    }
}

struct XFSAGInodes: Sendable, Equatable {
    /// "XAGI" (XFS_AGI_MAGIC).
    static let magic: UInt32 = 0x5841_4749
    static let crcOffset = 312

    var length: UInt32
    /// agi_count, agi_freecount: inodes allocated in the AG, and free among those.
    var count: UInt32
    var freeCount: UInt32

    init(_ raw: [UInt8], ag: UInt32, geometry: XFSGeometry, deviceOffset: UInt64) throws {
        let b = XFSBytes(raw, structure: "AGI \(ag)", deviceOffset: deviceOffset)
        guard try b.u32(0) == Self.magic else { throw b.damaged("bad magic (not XAGI)") }
        guard try b.u32(8) == ag else { throw b.damaged("sequence number \(try b.u32(8)) is not the AG's") }
        if geometry.isV5 {
            guard XFSChecksum.verify(raw, crcOffset: Self.crcOffset) else { throw b.damaged("CRC mismatch") }
            guard try b.slice(296, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
        }
        length = try b.u32(12)
        count = try b.u32(16)
        freeCount = try b.u32(28)
        guard length <= geometry.agBlocks, freeCount <= count else {
            throw b.damaged("counts (length \(length), inodes \(count), free \(freeCount)) are inconsistent")
        }
    }
}

extension XFSGeometry {
    /// Blocks in AG `ag`: agBlocks, except the last AG, which ends at sb_dblocks.
    func agLength(_ ag: UInt32, dataBlocks: UInt64) -> UInt32 {
        guard ag + 1 >= agCount else { return agBlocks }
        let before = UInt64(ag) * UInt64(agBlocks)   // validated against dblocks with the superblock
        return UInt32(truncatingIfNeeded: min(UInt64(agBlocks), dataBlocks > before ? dataBlocks - before : 0))
    }

    /// Byte offset of sector `sector` (0 = the superblock copy, 1 = AGF, 2 = AGI) of AG `ag`.
    func agHeaderOffset(_ ag: UInt32, sector: UInt32) -> UInt64 {
        UInt64(ag) * UInt64(agBlocks) * UInt64(blockSize) + UInt64(sector) * UInt64(sectorSize)
    }
}

/// Reads AG headers through `device`.
struct XFSAGHeaderReader {
    let device: any BlockDevice
    let geometry: XFSGeometry

    func freeSpace(_ ag: UInt32) throws -> XFSAGFreeSpace {
        let at = geometry.agHeaderOffset(ag, sector: 1)
        do {
            return try XFSAGFreeSpace(device.readBytes(at: at, count: Int(geometry.sectorSize)), ag: ag, geometry: geometry, deviceOffset: at)
        } catch { throw ImageError.wrap(error, path: device.displayName) }
    }

    func inodes(_ ag: UInt32) throws -> XFSAGInodes {
        let at = geometry.agHeaderOffset(ag, sector: 2)
        do {
            return try XFSAGInodes(device.readBytes(at: at, count: Int(geometry.sectorSize)), ag: ag, geometry: geometry, deviceOffset: at)
        } catch { throw ImageError.wrap(error, path: device.displayName) }
    }
}
