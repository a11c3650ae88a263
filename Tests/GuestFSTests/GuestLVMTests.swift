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

/// Tests the LVM part of `Sources/GuestFS/Guest.swift`: LVs as guest devices over several
/// drives, every name they answer to, and the PV/VG facts `filesystems --all` lists.
@Suite struct GuestLVMTests {
    static func blkidUUID(_ file: String) throws -> String {
        try Shell.check("blkid -p -o value -s UUID \(Shell.quote(file))").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func logicalVolumesAreDevicesOfTheGuest() throws {
        let fixture = try LVMFixtures.centos()
        let guest = try Guest(drives: fixture.disks.map { DriveSpec(path: $0) })
        let lvs = guest.devices.filter { $0.kind == .logicalVolume }
        #expect(lvs.map(\.name) == ["/dev/centos/root", "/dev/centos/data-vol", "/dev/centos/simple"])
        #expect(lvs.allSatisfy { $0.parent == "centos" && $0.partition == nil })
        #expect(lvs.map(\.content.type) == ["ext4", "ext4", "ext4"])
        #expect(lvs.map(\.content.label) == ["ROOT", "DATA-VOL", "SIMPLE"])
        for lv in lvs {
            let file = try #require(fixture.contents[String(lv.name.split(separator: "/").last!)])
            #expect(lv.content.uuid == (try Self.blkidUUID(file)))
        }
        #expect(guest.extFilesystems.map(\.name) == ["/dev/sda1", "/dev/centos/root", "/dev/centos/data-vol", "/dev/centos/simple"])
        #expect(guest.devices.first { $0.name == "/dev/sda2" }?.content.type == "LVM2_member")
        #expect(guest.devices.first { $0.name == "/dev/sdb" }?.content.type == "LVM2_member")
        #expect(guest.warnings == ["LV centos/snap: snapshot of root: snapshot volumes are not supported (its COW store is not a filesystem); skipped"])
    }

    @Test func everyNameOfAnLVFindsIt() throws {
        let fixture = try LVMFixtures.centos()
        let guest = try Guest(drives: fixture.disks.map { DriveSpec(path: $0) })
        let dataUUID = try Self.blkidUUID(try #require(fixture.contents["data-vol"]))
        let names: [(String, String)] = [
            ("/dev/centos/root", "/dev/centos/root"),
            ("/dev/mapper/centos-root", "/dev/centos/root"),
            ("/dev/centos/data-vol", "/dev/centos/data-vol"),
            ("/dev/mapper/centos-data--vol", "/dev/centos/data-vol"),
            ("UUID=\(dataUUID)", "/dev/centos/data-vol"),
            ("/dev/disk/by-uuid/\(dataUUID)", "/dev/centos/data-vol"),
            ("LABEL=SIMPLE", "/dev/centos/simple"),
            ("LABEL=\"ROOT\"", "/dev/centos/root"),
            ("/dev/vda1", "/dev/sda1"),
        ]
        for (spec, expected) in names {
            #expect((try? guest.device(named: spec))?.name == expected, "\(spec)")
        }
        for wrong in ["/dev/mapper/centos-data-vol", "/dev/centos/snap", "/dev/centos/snapshot0", "/dev/mapper/centos", "/dev/centos"] {
            #expect(throws: ImageError.self, "\(wrong)") { try guest.device(named: wrong) }
        }
    }

    @Test func volumeGroupAndPhysicalVolumeFacts() throws {
        let fixture = try LVMFixtures.centos()
        let guest = try Guest(drives: fixture.disks.map { DriveSpec(path: $0) })
        let vg = try #require(guest.volumeGroups.first)
        #expect(guest.volumeGroups.count == 1)
        #expect(vg.name == "centos")
        #expect(vg.size == UInt64(46 + 47) << 20)
        #expect(guest.physicalVolumes.map(\.name) == ["/dev/sda2", "/dev/sdb"])
        #expect(guest.physicalVolumes.map(\.volumeGroup) == ["centos", "centos"])
        #expect(guest.physicalVolumes.map(\.size) == [46 << 20, 47 << 20])
        #expect(Set(guest.physicalVolumes.map(\.uuid)) == Set(vg.physicalVolumes.map(\.uuid)))
        let lvs = guest.lvm.logicalVolumes
        #expect(lvs.map(\.uuid) == fixture.volumes.map(\.uuid))
        #expect(lvs.map(\.size) == fixture.volumes.map { UInt64($0.extents) << 20 })
    }

    /// Without the second drive, the VG is known but its LVs (all using pv1) are not devices.
    @Test func missingDriveIsAWarning() throws {
        let fixture = try LVMFixtures.centos()
        let guest = try Guest(drives: [DriveSpec(path: fixture.disks[0])])
        #expect(!guest.devices.contains { $0.kind == .logicalVolume })
        #expect(guest.warnings.contains { $0.hasPrefix("VG centos: PV pv1") }, "\(guest.warnings)")
        #expect(guest.volumeGroups.map(\.name) == ["centos"])
        let error = #expect(throws: ImageError.self) { try guest.device(named: "/dev/centos/root") }
        #expect(error?.reason.contains("no such device") == true)
    }

    /// A VG whose name starts like a disk alias (`vd…`) is not mistaken for `/dev/sd…`.
    @Test func volumeGroupNamedLikeADiskAlias() throws {
        let vg = try LVMTestVG(vgName: "vdata")
        let guest = try Guest(drives: [DriveSpec(path: vg.image)])
        #expect(guest.devices.map(\.name) == ["/dev/sda", "/dev/vdata/lv"])
        #expect((try? guest.device(named: "/dev/vdata/lv"))?.kind == .logicalVolume)
        #expect((try? guest.device(named: "/dev/mapper/vdata-lv"))?.kind == .logicalVolume)
        #expect((try? guest.device(named: "/dev/vda"))?.name == "/dev/sda")
    }
}
