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

/// Tests `Sources/GuestFS/Disk/LVM/LVM.swift`: assembling VGs from PVs over several drives,
/// choosing the newest metadata, and what a missing, duplicated or damaged PV costs.
extension DiskTests.LVMTests {
@Suite struct LVMScanTests {
    /// Copies of the CentOS fixture's two disks, to change without disturbing other tests.
    static func copyCentOS() throws -> (dir: TempDir, fixture: LVMFixtures.CentOS, disks: [String]) {
        let fixture = try LVMFixtures.centos()
        let dir = try TempDir("imagemount-lvm-copy")
        let disks = [dir.file("sda.img"), dir.file("sdb.img")]
        for (from, to) in zip(fixture.disks, disks) { try Shell.check("cp --sparse=always \(Shell.quote(from)) \(Shell.quote(to))") }
        return (dir, fixture, disks)
    }

    static func scan(_ disks: [String]) throws -> LVMScanResult {
        var pvs: [LVM.PhysicalVolumeInput] = []
        for (index, path) in disks.enumerated() {
            let image = try RawImage(path: path, writable: false)
            if let table = try PartitionTable.read(from: image, diskName: diskName(index: index)) {
                pvs += table.partitions.filter { $0.mbrType == 0x8e }.map { ($0.name, $0.device as any BlockDevice) }
            } else {
                pvs.append((diskName(index: index), image))
            }
        }
        return LVM.scan(pvs: pvs)
    }

    @Test func missingPVCostsTheVolumesOnIt() throws {
        let fixture = try LVMFixtures.centos()
        let scan = try Self.scan([fixture.disks[0]])
        let vg = try #require(scan.volumeGroups.first)
        #expect(vg.name == "centos")
        #expect(scan.physicalVolumes.map(\.name) == ["/dev/sda2"])
        #expect(scan.logicalVolumes.isEmpty, "every test LV uses pv1")
        #expect(scan.warnings.contains { $0.hasPrefix("VG centos: PV pv1 (") && $0.hasSuffix("is missing") }, "\(scan.warnings)")
        for name in ["root", "data-vol", "simple"] {
            #expect(scan.warnings.contains { $0.hasPrefix("LV centos/\(name): PV pv1 (") && $0.hasSuffix("is missing; skipped") }, "\(name): \(scan.warnings)")
        }
        // The second disk alone holds metadata too (each PV has its own copy), and so the VG.
        let other = try Self.scan([fixture.disks[1]])
        #expect(other.volumeGroups.first?.uuid == vg.uuid)
        #expect(other.physicalVolumes.map(\.name) == ["/dev/sda"])
    }

    /// Metadata changed while one disk was away: the copy with the higher seqno wins.
    @Test func newestMetadataWins() throws {
        let (dir, fixture, disks) = try Self.copyCentOS()
        let stale = dir.file("sdb-stale.img")
        try Shell.check("cp --sparse=always \(Shell.quote(disks[1])) \(Shell.quote(stale))")
        let pvs = [LVMImageBuilder.PV(image: disks[0], offset: LVMFixtures.sda2.start, size: LVMFixtures.sda2.size), .init(image: disks[1])]
        let seqno = try fixture.builder.withLoops(pvs) { loops in
            try fixture.builder.lvm("vgchange", "-q --addtag newer centos", loops: loops)
            return try fixture.builder.lvm("vgs", "--noheadings -o vg_seqno centos", loops: loops).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for order in [[disks[0], stale], [stale, disks[0]]] {
            let scan = try Self.scan(order)
            let vg = try #require(scan.volumeGroups.first)
            #expect(vg.seqno == UInt64(seqno))
            #expect(scan.warnings.contains { $0.contains("holds older metadata (seqno \(vg.seqno - 1) < \(vg.seqno))") }, "\(scan.warnings)")
            #expect(scan.logicalVolumes.map(\.name) == ["root", "data-vol", "simple"])
        }
    }

    @Test func sameDiskTwiceIsUsedOnce() throws {
        let fixture = try LVMFixtures.centos()
        let scan = try Self.scan([fixture.disks[0], fixture.disks[1], fixture.disks[1]])
        #expect(scan.physicalVolumes.map(\.name) == ["/dev/sda2", "/dev/sdb"])
        #expect(scan.warnings.contains { $0.hasPrefix("/dev/sdc: PV UUID") && $0.contains("is also on /dev/sdb") }, "\(scan.warnings)")
        #expect(scan.logicalVolumes.count == 3)
    }

    /// A damaged label on one PV: that PV is ignored (with the label's own error), its VG's
    /// other PV still yields the VG, and LVs needing the damaged one are reported missing.
    @Test func damagedLabelIsAWarningNamingTheGuestDevice() throws {
        let (dir, _, disks) = try Self.copyCentOS()
        defer { withExtendedLifetime(dir) {} }
        try LVMDamage(image: disks[1], pvOffset: 0).patch(at: 512 + 0x30, Array("XYZ".utf8))
        let scan = try Self.scan(disks)
        #expect(scan.warnings.first?.hasPrefix("/dev/sdb: LVM label at 0x200: checksum mismatch") == true, "\(scan.warnings)")
        #expect(scan.volumeGroups.count == 1)
        #expect(scan.logicalVolumes.isEmpty)
    }

    /// A damaged metadata copy on one PV: the other PV's copy is used.
    @Test func damagedMetadataOnOnePVFallsBackToTheOther() throws {
        let (dir, _, disks) = try Self.copyCentOS()
        defer { withExtendedLifetime(dir) {} }
        let damage = LVMDamage(image: disks[0], pvOffset: LVMFixtures.sda2.start)
        let locn = try damage.rawLocation()
        try damage.patch(at: LVMDamage.mdaOffset + locn.offset + 100, Array("garbage".utf8))
        let scan = try Self.scan(disks)
        #expect(scan.warnings.first?.hasPrefix("/dev/sda2: LVM metadata text at ") == true, "\(scan.warnings)")
        #expect(scan.warnings.first?.contains("checksum mismatch") == true)
        #expect(scan.logicalVolumes.map(\.name) == ["root", "data-vol", "simple"])
    }

    /// Every integer of the committed metadata replaced by a value from the edges of the
    /// ranges lvm2 uses (checksums recomputed, so the numbers reach the decoder): the scan
    /// always ends, and any LV it still maps reads its first and last byte without error.
    @Test func randomNumbersInMetadataNeverCrash() throws {
        let vg = try LVMTestVG(volumes: [
            LVMTestVG.lv,
            LVMTestVolume(name: "striped", uuid: "StrpLV-aaaa-bbbb-cccc-dddd-eeee-ffff09",
                          segments: [.init(extents: 2, stripes: [(0, 8)]), .init(extents: 4, stripes: [(0, 10), (0, 12)], stripeSectors: 16)]),
        ])
        let original = try vg.damage.metadataText()
        let edges: [Int64] = [0, 1, -1, 2, 7, 15, 16, 2048, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 40, Int64.max, Int64.min]
        var rng = SplitMix(seed: 2026)
        var mapped = 0
        for round in 0 ..< 150 {
            var text = ""
            var number = ""
            // One number in 3 replaced, and in every fifth round one in 200, so that some
            // rounds surely keep an LV whole (the VG lvm2 made has new UUIDs and times each run).
            let odds: UInt64 = round % 5 == 4 ? 200 : 3
            func flush() {
                guard !number.isEmpty else { return }
                text += rng.next() % odds == 0 ? String(edges[Int(rng.next() % UInt64(edges.count))]) : number
                number = ""
            }
            for c in original {
                if c.isNumber, !(text.last.map { $0.isLetter } ?? false) || !number.isEmpty { number.append(c) } else { flush(); text.append(c) }
            }
            flush()
            try vg.damage.rewriteMetadata { _ in text }
            let scan = try vg.scan()
            for lv in scan.logicalVolumes {
                _ = try lv.readBytes(at: 0, count: 1)
                _ = try lv.readBytes(at: lv.size - 1, count: 1)
                mapped += 1
            }
        }
        #expect(mapped > 0, "some rounds leave an LV intact")
    }

    /// `--pvmetadatacopies 2` puts a second metadata area at the end of the PV; with the first
    /// one damaged, the second still yields the VG.
    @Test func secondMetadataAreaStandsInForADamagedFirst() throws {
        let vg = try LVMTestVG(pvcreate: "--pvmetadatacopies 2")
        let label = try #require(try LVMLabel.read(from: RawImage(path: vg.image, writable: false)))
        #expect(label.metadataAreas.count == 2)
        #expect(label.metadataAreas[1].offset > label.metadataAreas[0].offset)
        #expect(try vg.scan().warnings.isEmpty)
        try vg.damage.patchMDAHeader(at: 0x04, Array("broken".utf8))
        let scan = try vg.scan()
        #expect(scan.warnings.count == 1 && scan.warnings[0].contains("LVM mda_header at 0x1000: bad magic"), "\(scan.warnings)")
        #expect(scan.logicalVolumes.map(\.name) == ["lv"])
    }
}
}
