@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

extension FuzzHarness {
    /// XFS/Log: the head and tail search, the record walk (CRCs, cycle words), transaction
    /// reassembly and the replay of every item into an overlay, then the summary counters read
    /// back through it. The input is a whole small XFS (raw or sparse, see FuzzDevice).
    /// Registering it as a libFuzzer target is one entry in `targets` and fuzz/Package.swift.
    static func xfsLog(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/xfs-log")
        guard let sb = try? device.readBytes(at: 0, count: 512), let geometry = try? xfsGeometry(sb),
              let result = try? XFSLogRecovery.recover(device: device, superblock: sb, geometry: geometry) else { return }
        _ = try? XFSLogRecovery.summaryCounters(device: result.overlay, geometry: geometry)
        _ = result.overlay.fuzzRead(at: 0, count: 8192)
    }

    /// Superblock 0 into XFSGeometry, for harnesses and tests (xfs_format.h `struct xfs_dsb`
    /// offsets); the driver's own parser checks far more.
    static func xfsGeometry(_ sb: [UInt8]) throws -> XFSGeometry {
        let b = XFSBytes(sb, structure: "superblock")
        let v5 = try b.u16(100) & 0xF == 5
        let incompat = v5 ? try b.u32(216) : 0
        let metaUUID = incompat & 0x4 != 0 ? try b.slice(248, 16) : try b.slice(32, 16)
        return XFSGeometry(
            blockSize: try b.u32(4), blockLog: try b.u8(120), sectorSize: UInt32(try b.u16(102)),
            inodeSize: try b.u16(104), inodesPerBlockLog: try b.u8(123), agBlocks: try b.u32(84),
            agBlockLog: try b.u8(124), agCount: try b.u32(88), dirBlockLog: try b.u8(192), isV5: v5,
            hasFtype: try v5 || b.u32(200) & 0x200 != 0, asciiCI: false, metaUUID: metaUUID,
            hasNrext64: incompat & 0x20 != 0, hasBigtime: incompat & 0x8 != 0)
    }
}
