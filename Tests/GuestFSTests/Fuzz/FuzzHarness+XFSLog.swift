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

    /// Superblock 0 into XFSGeometry through the driver's own superblock parser (which refuses
    /// what the driver refuses), for harnesses and tests.
    static func xfsGeometry(_ sb: [UInt8]) throws -> XFSGeometry {
        try XFSSuperblock(sb, device: "superblock").geometry
    }
}
