import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing
import TestSupport

/// Tests `Sources/GuestFS/Disk/LVM/LVMLabel.swift` and `LVMChecksum.swift`: labels written by
/// `pvcreate`, compared with what `pvs` reports; damaged labels made byte by byte.
extension DiskTests.LVMTests {
@Suite struct LVMLabelTests {
    /// A 16 MiB image made a PV by `pvcreate OPTIONS`, and `pvs`' view of it.
    static func makePV(_ options: String = "") throws -> (builder: LVMImageBuilder, image: String, pvs: [String]) {
        let builder = try LVMImageBuilder()
        let image = builder.dir.file("pv.img")
        try Shell.check("truncate -s 16M \(Shell.quote(image))")
        let fields = try builder.withLoops([.init(image: image)]) { loops in
            try builder.lvm("pvcreate", "-y -q \(options) \(loops[0])", loops: loops)
            return try builder.lvm("pvs", "--noheadings --units b --nosuffix --separator , -o pv_uuid,pe_start,pv_mda_size,dev_size \(loops[0])", loops: loops)
        }
        return (builder, image, fields.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: ","))
    }

    @Test func labelMatchesPvs() throws {
        let (builder, image, pvs) = try Self.makePV()
        defer { withExtendedLifetime(builder) {} }
        let label = try #require(try LVMLabel.read(from: RawImage(path: image, writable: false)))
        #expect(label.sector == 1, "pvcreate puts the label in sector 1 by default")
        #expect(label.pvUUID == pvs[0])
        #expect(label.dataAreas.first?.offset == UInt64(pvs[1]))
        #expect(label.metadataAreas.count == 1)
        #expect(label.metadataAreas.first?.offset == 4096)
        #expect(label.metadataAreas.first?.size == UInt64(pvs[2]))
        #expect(label.deviceSize == UInt64(pvs[3]))
        #expect(VolumeProbe.probe(try RawImage(path: image, writable: false)).uuid == pvs[0])
    }

    @Test func labelInSectorZeroAndNoMetadataArea() throws {
        let (builder, image, pvs) = try Self.makePV("--labelsector 0 --metadatacopies 0")
        defer { withExtendedLifetime(builder) {} }
        let label = try #require(try LVMLabel.read(from: RawImage(path: image, writable: false)))
        #expect(label.sector == 0)
        #expect(label.pvUUID == pvs[0])
        #expect(label.metadataAreas.isEmpty)
    }

    @Test func checksumIsLvmsCalcCRC() throws {
        let (builder, image, _) = try Self.makePV()
        defer { withExtendedLifetime(builder) {} }
        let damage = LVMDamage(image: image, pvOffset: 0)
        let sector = try damage.bytes(at: 512, count: 512)
        let stored = UInt32(LVMDamage.le(sector, 0x10, 4))
        #expect(LVMChecksum.compute(sector[0x14...]) == stored)
        #expect(LVMDamage.calcCRC(sector[0x14...]) == stored)
        var rng = SystemRandomNumberGenerator()
        for length in [0, 1, 7, 512, 4099] {
            let data = (0 ..< length).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            #expect(LVMChecksum.compute(data) == LVMDamage.calcCRC(data))
            #expect(LVMChecksum.update(LVMChecksum.compute(data.prefix(length / 2)), data.dropFirst(length / 2)) == LVMDamage.calcCRC(data))
        }
        // Not zlib's CRC-32: the seed differs and there is no final inversion.
        #expect(LVMChecksum.compute(Array("123456789".utf8)) != 0xcbf4_3926)
    }

    /// (what to change in the label sector, whether to recompute the checksum, the error).
    @Test(arguments: [
        (0x28, [UInt8(ascii: "!")], false, "checksum mismatch"),
        (0x08, [7], false, "says it is in sector 7"),
        (0x18, Array("LVM1 001".utf8), true, "unknown label type"),
        (0x14, [0xf0, 0x01, 0, 0], true, "does not leave room"),
        (0x20, Array("!!!!".utf8), true, "characters LVM never writes"),
    ] as [(Int, [UInt8], Bool, String)])
    func damagedLabelIsAnError(at: Int, bytes: [UInt8], fixChecksum: Bool, reason: String) throws {
        let (builder, image, _) = try Self.makePV()
        defer { withExtendedLifetime(builder) {} }
        let damage = LVMDamage(image: image, pvOffset: 0)
        var sector = try damage.bytes(at: 512, count: 512)
        sector.replaceSubrange(at ..< at + bytes.count, with: bytes)
        if fixChecksum { sector.replaceSubrange(0x10 ..< 0x14, with: LVMDamage.le(UInt64(LVMDamage.calcCRC(sector[0x14...])), 4)) }
        try damage.patch(at: 512, sector)
        let error = #expect(throws: ImageError.self) { try LVMLabel.read(from: RawImage(path: image, writable: false)) }
        #expect(error?.reason.contains(reason) == true, "\(error?.description ?? "")")
        #expect(error?.structure == "LVM label")
        #expect(error?.offset == 512)
    }

    /// Area lists that never end are stopped by the sector's end.
    @Test func endlessAreaListStopsAtTheSectorEnd() throws {
        var sector = Array("LABELONE".utf8) + [1, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0] + [32, 0, 0, 0] + Array("LVM2 001".utf8)
        sector += Array(repeating: UInt8(ascii: "A"), count: 32) + LVMDamage.le(1 << 24, 8)
        while sector.count < 512 { sector.append(0x11) }
        sector.replaceSubrange(0x10 ..< 0x14, with: LVMDamage.le(UInt64(LVMDamage.calcCRC(sector[0x14...])), 4))
        let device = MemoryDevice([UInt8](repeating: 0, count: 512) + sector + [UInt8](repeating: 0, count: 1024))
        let error = #expect(throws: ImageError.self) { try LVMLabel.read(from: device) }
        #expect(error?.reason.contains("runs past the end of the label sector") == true)
    }

    @Test func noLabelIsNil() throws {
        #expect(try LVMLabel.read(from: MemoryDevice(size: 4096)) == nil)
        #expect(try LVMLabel.read(from: MemoryDevice(size: 100)) == nil)
        // "LABELONE" in sector 4 is past where lvm looks (LABEL_SCAN_SECTORS).
        var bytes = [UInt8](repeating: 0, count: 4096)
        bytes.replaceSubrange(2048 ..< 2056, with: Array("LABELONE".utf8))
        #expect(try LVMLabel.read(from: MemoryDevice(bytes)) == nil)
    }
}
}
