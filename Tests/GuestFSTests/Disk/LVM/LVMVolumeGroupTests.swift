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

/// Tests `Sources/GuestFS/Disk/LVM/LVMVolumeGroup.swift`: the VG, PV and LV model decoded from
/// metadata lvm2 wrote, compared with `pvs`/`vgs`/`lvs --reportformat json` on the same images;
/// metadata damaged in its numbers, names and structure.
extension DiskTests.LVMTests {
@Suite struct LVMVolumeGroupTests {
    /// `pvs`, `vgs`, `lvs` (JSON, bytes) on the fixture's PVs, attached read-only.
    struct Report {
        var loopOfUUID: [String: String] = [:]
        var pvs: [[String: String]] = []
        var vgs: [[String: String]] = []
        var lvSegments: [[String: String]] = []

        init(_ fixture: LVMFixtures.CentOS) throws {
            func rows(_ json: String, _ kind: String) throws -> [[String: String]] {
                let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
                let report = (object?["report"] as? [[String: Any]])?.first
                return report?[kind] as? [[String: String]] ?? []
            }
            let common = "--units b --nosuffix --reportformat json"
            (pvs, vgs, lvSegments) = try fixture.builder.withLoops(fixture.pvs, readOnly: true) { loops in
                let b = fixture.builder
                return (try rows(b.lvm("pvs", "\(common) -o pv_name,pv_uuid,pv_size,dev_size,pe_start,vg_name", loops: loops), "pv"),
                        try rows(b.lvm("vgs", "\(common) -o vg_name,vg_uuid,vg_size,vg_extent_size,pv_count,lv_count,vg_seqno", loops: loops), "vg"),
                        try rows(b.lvm("lvs", "\(common) -o lv_name,lv_uuid,lv_size,seg_start_pe,seg_size_pe,segtype,stripes,stripe_size,seg_pe_ranges", loops: loops), "lv"))
            }
            for pv in pvs { loopOfUUID[pv["pv_uuid"]!] = pv["pv_name"] }
        }
    }

    static func scanCentOS(_ fixture: LVMFixtures.CentOS, disks: Int = 2) throws -> LVMScanResult {
        let sda = try RawImage(path: fixture.disks[0], writable: false)
        let sda2 = try SliceDevice(base: sda, start: LVMFixtures.sda2.start, size: LVMFixtures.sda2.size, name: "/dev/sda2")
        var pvs: [LVM.PhysicalVolumeInput] = [("/dev/sda2", sda2)]
        if disks > 1 { pvs.append(("/dev/sdb", try RawImage(path: fixture.disks[1], writable: false))) }
        return LVM.scan(pvs: pvs)
    }

    @Test func modelMatchesPvsVgsLvs() throws {
        let fixture = try LVMFixtures.centos()
        let report = try Report(fixture)
        let scan = try Self.scanCentOS(fixture)
        let vg = try #require(scan.volumeGroups.first)
        #expect(scan.volumeGroups.count == 1)

        // vgs
        let theirVG = try #require(report.vgs.first)
        #expect(vg.name == theirVG["vg_name"])
        #expect(vg.uuid == theirVG["vg_uuid"])
        #expect(vg.size == UInt64(theirVG["vg_size"]!))
        #expect(vg.extentBytes == UInt64(theirVG["vg_extent_size"]!))
        #expect(vg.seqno == UInt64(theirVG["vg_seqno"]!))
        #expect(vg.physicalVolumes.count == Int(theirVG["pv_count"]!))

        // pvs: in the order given, with the guest names they were handed in under.
        #expect(scan.physicalVolumes.map(\.name) == ["/dev/sda2", "/dev/sdb"])
        #expect(report.pvs.count == 2)
        for pv in scan.physicalVolumes {
            let theirs = try #require(report.pvs.first { $0["pv_uuid"] == pv.uuid })
            #expect(pv.size == UInt64(theirs["pv_size"]!))
            #expect(pv.deviceSize == UInt64(theirs["dev_size"]!))
            #expect(pv.peStart == UInt64(theirs["pe_start"]!))
            #expect(pv.volumeGroup == theirs["vg_name"])
            #expect(pv.volumeGroupUUID == vg.uuid)
        }

        // lvs: one row per segment. Every LV lvs shows is in our model; the mapped ones match
        // segment by segment, PE ranges written with the loop device each PV is on.
        let theirNames = Set(report.lvSegments.map { $0["lv_name"]! })
        #expect(Set(vg.logicalVolumes.filter(\.isVisible).map(\.name)) == theirNames)
        #expect(theirNames == ["root", "data-vol", "simple", "snap"])
        for lv in vg.logicalVolumes where lv.skipReason == nil {
            let rows = report.lvSegments.filter { $0["lv_name"] == lv.name }.sorted { Int($0["seg_start_pe"]!)! < Int($1["seg_start_pe"]!)! }
            #expect(rows.count == lv.segments.count, "\(lv.name)")
            #expect(rows.first?["lv_uuid"] == lv.uuid)
            #expect(rows.first.flatMap { UInt64($0["lv_size"]!) } == lv.extentCount * vg.extentBytes)
            for (ours, theirs) in zip(lv.segments, rows) {
                guard case .striped(let stripeSize, let stripes) = ours.layout else { Issue.record("\(lv.name) not striped"); continue }
                #expect(ours.startExtent == UInt64(theirs["seg_start_pe"]!))
                #expect(ours.extentCount == UInt64(theirs["seg_size_pe"]!))
                #expect(stripes.count == Int(theirs["stripes"]!))
                #expect(stripeSize * 512 == UInt64(theirs["stripe_size"]!))
                #expect(theirs["segtype"] == (stripes.count == 1 ? "linear" : "striped"))
                let ranges = stripes.map { stripe -> String in
                    let uuid = vg.physicalVolume(key: stripe.pv)!.uuid
                    return "\(report.loopOfUUID[uuid] ?? "?"):\(stripe.startExtent)-\(stripe.startExtent + ours.areaExtents - 1)"
                }
                #expect(ranges.joined(separator: " ") == theirs["seg_pe_ranges"], "\(lv.name)")
            }
        }
        // And what the fixture asked for.
        #expect(scan.logicalVolumes.map(\.name) == ["root", "data-vol", "simple"])
        for (device, spec) in zip(scan.logicalVolumes, fixture.volumes) {
            #expect(device.uuid == spec.uuid)
            #expect(device.size == UInt64(spec.extents * fixture.extentBytes))
            #expect(device.path == "/dev/centos/\(spec.name)")
        }
    }

    /// The snapshot's COW store is visible but not a volume we can read; the hidden snapshot0
    /// is an internal volume. Both are listed, neither is mapped.
    @Test func snapshotVolumesAreListedAndSkipped() throws {
        let scan = try Self.scanCentOS(try LVMFixtures.centos())
        let vg = try #require(scan.volumeGroups.first)
        let snap = try #require(vg.logicalVolumes.first { $0.name == "snap" })
        let snapshot0 = try #require(vg.logicalVolumes.first { $0.name == "snapshot0" })
        #expect(snap.skipReason?.contains("snapshot of root") == true)
        #expect(snapshot0.isVisible == false)
        #expect(snapshot0.segments.first?.type == "snapshot")
        #expect(snapshot0.segments.first?.layout == .unsupported)
        #expect(snapshot0.snapshotOrigin == "root" && snapshot0.snapshotCOWStore == "snap")
        #expect(scan.warnings.contains { $0.hasPrefix("LV centos/snap: snapshot of root") }, "\(scan.warnings)")
        #expect(scan.notes.contains { $0.hasPrefix("LV centos/snapshot0: hidden") }, "\(scan.notes)")
        #expect(!scan.logicalVolumes.contains { $0.name == "snap" || $0.name == "snapshot0" })
        #expect(scan.warnings.count == 1, "\(scan.warnings)")
    }

    /// (what to change in the committed metadata, the warning expected). Each leaves the VG
    /// readable and costs only the LV (or, for the VG's own fields, the VG), never a crash.
    @Test(arguments: [
        ("extent_count = 4", "extent_count = 99999999999", "extent_count missing or outside"),
        ("\"pv0\", 2", "\"pv0\", 4000000000", "stripe 0 uses extents 4000000000..<4000000004 of pv0, which has 15"),
        ("\"pv0\", 2", "\"pv9\", 2", "names unknown PV pv9"),
        ("stripe_count = 1", "stripe_count = 1000", "stripe_count 1000 is outside"),
        ("stripe_count = 1", "stripe_count = 3", "not a multiple of stripe_count"),
        ("start_extent = 0", "start_extent = 5", "leaves a gap or overlap"),
        ("type = \"striped\"", "type = \"thin\"", "segment type \"thin\" is not supported"),
        ("type = \"striped\"", "type = \"raid1\"", "segment type \"raid1\" is not supported"),
        ("\nlv {", "\n.. {", "not a valid LVM name"),
        ("segment1 {", "segmentX = 1 nosegment {", "has no segments"),
    ])
    func damagedVolumeIsSkippedWithAWarning(find: String, replace: String, reason: String) throws {
        let vg = try LVMTestVG()
        try vg.rewrite { $0.replacingOccurrences(of: find, with: replace) }
        let scan = try vg.scan()
        #expect(scan.volumeGroups.count == 1)
        #expect(scan.logicalVolumes.isEmpty)
        #expect(scan.warnings.count == 1 && scan.warnings[0].contains(reason), "\(scan.warnings)")
    }

    /// pe_count raised past the device: the model accepts the stripe, the device check does not.
    @Test func segmentPastTheEndOfThePVIsSkipped() throws {
        let vg = try LVMTestVG()
        try vg.rewrite {
            $0.replacingOccurrences(of: "pe_count = 15", with: "pe_count = 100000")
                .replacingOccurrences(of: "\"pv0\", 2", with: "\"pv0\", 99990")
        }
        let scan = try vg.scan()
        #expect(scan.logicalVolumes.isEmpty)
        #expect(scan.warnings.count == 1 && scan.warnings[0].contains("run past the end of /dev/sda"), "\(scan.warnings)")
    }

    @Test(arguments: [
        ("extent_size = 2048", "extent_size = 0", "extent_size 0 is outside"),
        ("extent_size = 2048", "extent_size = -8", "extent_size -8 is outside"),
        ("seqno = ", "seqno = -", "names no VG with an id and seqno"),
        ("pe_count = 15", "pe_count = 99999999999", "pe_count 99999999999 is outside"),
        ("pe_start = 2048", "pe_start = \"x\"", "pe_start missing is outside"),
    ])
    func damagedGroupFieldsCostTheGroup(find: String, replace: String, reason: String) throws {
        let vg = try LVMTestVG()
        try vg.rewrite { $0.replacingOccurrences(of: find, with: replace) }
        let scan = try vg.scan()
        #expect(scan.volumeGroups.isEmpty)
        #expect(scan.logicalVolumes.isEmpty)
        #expect(scan.warnings.contains { $0.contains(reason) }, "\(scan.warnings)")
        #expect(scan.physicalVolumes.count == 1 && scan.physicalVolumes[0].volumeGroup == nil)
    }

    @Test func hiddenVolumeIsANoteNotAWarning() throws {
        let vg = try LVMTestVG()
        try vg.rewrite { $0.replacingOccurrences(of: "\"READ\", \"WRITE\", \"VISIBLE\"", with: "\"READ\", \"WRITE\"") }
        let scan = try vg.scan()
        #expect(scan.logicalVolumes.isEmpty)
        #expect(scan.warnings.isEmpty, "\(scan.warnings)")
        #expect(scan.notes == ["LV damagevg/lv: hidden (internal) volume; skipped"])
    }

    /// Text cut in half (checksum recomputed, as if lvm2 had written it so) and sections nested
    /// deeper than the bound: the metadata copy is refused with the parser's reason.
    @Test(arguments: ["truncated", "nested"])
    func unparsableMetadataIsAWarning(kind: String) throws {
        let vg = try LVMTestVG()
        if kind == "truncated" {
            try vg.rewrite { String($0[..<$0.range(of: "extent_count = 4")!.upperBound]) }
        } else {
            try vg.rewrite { $0.replacingOccurrences(of: "\nflags = []", with: "\n" + String(repeating: "x {", count: 5000) + String(repeating: "}", count: 5000), options: [], range: $0.range(of: "\nflags = []")) }
        }
        let scan = try vg.scan()
        #expect(scan.volumeGroups.isEmpty)
        let reason = kind == "truncated" ? "text ends inside" : "nest deeper than 32"
        #expect(scan.warnings.count == 1 && scan.warnings[0].contains(reason), "\(scan.warnings)")
        #expect(scan.warnings.first?.contains("LVM metadata text") == true)
    }
}
}
