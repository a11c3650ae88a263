import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// QED images made by qemu-img (cluster_size and table_size at their defaults and ends, a qed
/// overlay, an overlay over a raw base with QED_F_BACKING_FORMAT_NO_PROBE), read as
/// `qemu-img convert -f qed -O raw` reads them; the need-check flag; damaged headers and tables.
@Suite struct QEDImageTests {
    static let names = FormatFixtures.images.filter { $0.format == .qed }.map(\.name)

    @Test("qed reads equal qemu-img convert -O raw", arguments: names)
    func matchesOracle(_ name: String) throws {
        try OtherFormatChecks.matchesOracle(name, as: QEDImage.self, unit: 4096)
    }

    @Test("info is qemu-img info's", arguments: names)
    func infoMatches(_ name: String) throws {
        try OtherFormatChecks.infoMatches(try FormatFixtures.get().path(name))
    }

    @Test(arguments: ["qed-overlay.qed", "qed-rawbase.qed"])
    func overlayInfoWithBackingChain(_ name: String) throws {
        try OtherFormatChecks.infoMatches(try FormatFixtures.get().path(name), chain: true)
    }

    /// QED_F_BACKING_FORMAT_NO_PROBE: the backing file is opened as raw, never probed.
    @Test func rawBackingIsNotProbed() throws {
        let device = try #require(try ImageOpener.open(path: FormatFixtures.get().path("qed-rawbase.qed"), format: nil, writable: false) as? QEDImage)
        #expect(device.backing is RawImage)
    }

    /// QED_F_NEED_CHECK: QEMU reads such an image opened read-only as it is (it checks and fixes
    /// only read-write opens); so do we, byte for byte, and info shows the dirty flag as qemu-img does.
    @Test func needCheckImagesReadAsTheyAre() throws {
        let p = try PatchedImage("qed-converted.qed", format: .qed)
        try p.le(16, try p.leValue(16, width: 8) | QEDFormat.needCheck, width: 8)
        let before = try p.bytes(0, 4096)
        try Qcow2ImageTests.compare(try p.open(), with: try p.oracle(), unit: 65536, label: "need-check")
        try OtherFormatChecks.infoMatches(p.path)
        #expect(try p.bytes(0, 4096) == before, "a read-only open wrote the header")
    }

    @Test(arguments: [
        (UInt64(4), UInt64(3000), 4, "cluster size 3000 is invalid"),
        (4, 128 << 20, 4, "cluster size 134217728 is invalid"),
        (8, 3, 4, "table size 3 is invalid"),
        (8, 32, 4, "table size 32 is invalid"),
        (8, 1, 4, "L1 table offset 0x10000 is invalid"),
        (48, 1000, 8, "image size 1000 is invalid"),
        (48, 1 << 62, 8, "image size 4611686018427387904 is invalid"),
        (40, 1 << 40, 8, "L1 table offset 0x10000000000 is invalid"),
        (40, 65536 + 512, 8, "L1 table offset 0x10200 is invalid"),
        (16, 0x10, 8, "unsupported QED features: 10"),
        (12, 0xFFFF_FFFF, 4, "QED header"),
    ] as [(UInt64, UInt64, Int, String)])
    func damagedHeaderFields(_ offset: UInt64, _ value: UInt64, _ width: Int, _ words: String) throws {
        let p = try PatchedImage("qed-converted.qed", format: .qed)
        try p.le(offset, value, width: width)
        VHDCorruptionTests.expectError([p.path, "QED header", words]) { _ = try p.open() }
        VHDCorruptionTests.expectError(["QED header", words]) { _ = try ImageInfo.gather(path: p.path, format: .qed) }
        // qemu-img refuses the same images.
        #expect(try Shell.run("qemu-img info -f qed \(Shell.quote(p.path))").status != 0)
    }

    @Test func backingNameOutsideTheHeader() throws {
        let p = try PatchedImage("qed-overlay.qed", format: .qed)
        try p.le(60, 70000, width: 4)
        VHDCorruptionTests.expectError(["QED header at 0x38", "lies outside the header"]) { _ = try p.open() }
    }

    /// Damaged L1 and L2 entries fail the reads that meet them, in one line, and no others.
    @Test func invalidTableEntriesFailTheirReadsOnly() throws {
        let p = try PatchedImage("qed-converted.qed", format: .qed)
        let expected = try p.oracle()
        let l1 = try p.leValue(40, width: 8)
        let l2 = try p.leValue(l1, width: 8)
        #expect(l2 != 0)
        try p.le(l2, 12345, width: 8)
        let device = try p.open()
        VHDCorruptionTests.expectError(["QED L2 table at 0x\(String(l2, radix: 16))", "entry 0", "invalid cluster offset 0x3039"]) {
            _ = try device.readBytes(at: 70000 - 65536, count: 10)
        }
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 65536, count: 1 << 20), expected[65536 ..< 65536 + (1 << 20)]))
        try p.le(l1, 1 << 50, width: 8)
        let broken = try p.open()
        VHDCorruptionTests.expectError(["QED L1 table at 0x\(String(l1, radix: 16))", "invalid L2 table offset"]) {
            _ = try broken.readBytes(at: 0, count: 10)
        }
    }

    @Test func backingLoopIsRefused() throws {
        let p = try PatchedImage("qed-overlay.qed", format: .qed)
        let name = Array("qed-overlay.qed".utf8)
        try p.le(60, UInt64(name.count), width: 4)
        try p.patch(try p.leValue(56, width: 4), name)
        VHDCorruptionTests.expectError(["backing chain loops back"]) { _ = try p.open() }
    }
}

/// `check` of QED images against `qemu-img check -f qed` (counts and exit status; qed_check prints no messages).
@Suite struct QEDCheckTests {
    static func expectSame(_ path: String) throws {
        let device = try #require(try ImageOpener.open(path: path, format: .qed, writable: false) as? QEDImage)
        let ours = device.check()
        let status = try Shell.run("qemu-img check -f qed \(Shell.quote(path))").status
        let j = try Shell.run("qemu-img check -f qed --output=json \(Shell.quote(path))")
        let json = try JSONSerialization.jsonObject(with: j.stdout) as? [String: Any] ?? [:]
        func n(_ key: String) -> UInt64 { (json[key] as? NSNumber)?.uint64Value ?? 0 }
        #expect(ours.exitStatus == status, "\(path)")
        #expect(ours.messages.isEmpty)
        #expect(UInt64(ours.corruptions) == n("corruptions"))
        #expect(UInt64(ours.leaks) == n("leaks"))
        #expect(ours.totalClusters == n("total-clusters"))
        #expect(ours.allocatedClusters == n("allocated-clusters"))
        #expect(ours.fragmentedClusters == n("fragmented-clusters"))
    }

    @Test(arguments: QEDImageTests.names)
    func cleanImages(_ name: String) throws {
        let path = try FormatFixtures.get().path(name)
        try Self.expectSame(path)
        let device = try #require(try ImageOpener.open(path: path, format: .qed, writable: false) as? QEDImage)
        #expect(device.check().exitStatus == 0)
    }

    @Test func invalidAndSharedEntriesAndLeaks() throws {
        let p = try PatchedImage("qed-converted.qed", format: .qed)
        let l1 = try p.leValue(40, width: 8)
        let l2 = try p.leValue(l1, width: 8)
        try p.le(l2 + 8, try p.leValue(l2, width: 8), width: 8)    // cluster 1 shares cluster 0's data
        try p.le(l2 + 16, 12345, width: 8)                          // cluster 2: invalid offset
        try Self.expectSame(p.path)
        let device = try #require(try p.open() as? QEDImage)
        #expect(device.check().corruptions == 2 && device.check().leaks >= 1)
        let q = try PatchedImage("qed-4k.qed", format: .qed)
        try Shell.check("truncate -s +12288 \(Shell.quote(q.path))")   // three clusters nothing references
        try Self.expectSame(q.path)
        let leaky = try #require(try q.open() as? QEDImage)
        #expect(leaky.check().leaks == 3 && leaky.check().exitStatus == 3)
    }
}
