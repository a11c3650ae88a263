import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Parallels images made by qemu-img (1 MiB and 64 KiB clusters), and the old
/// "WithoutFreeSpace" variant made from one, read as `qemu-img convert -f parallels -O raw`
/// reads them; `check` as qemu-img check; damaged headers.
@Suite struct ParallelsImageTests {
    static let names = FormatFixtures.images.filter { $0.format == .parallels }.map(\.name)

    @Test("parallels reads equal qemu-img convert -O raw", arguments: names)
    func matchesOracle(_ name: String) throws {
        try OtherFormatChecks.matchesOracle(name, as: ParallelsImage.self, unit: 65536)
    }

    @Test("info is qemu-img info's", arguments: names)
    func infoMatches(_ name: String) throws {
        try OtherFormatChecks.infoMatches(try FormatFixtures.get().path(name))
    }

    /// The old signature counts BAT entries in sectors, not clusters (parallels.txt, "off_multiplier").
    @Test func withoutFreeSpaceImagesCountInSectors() throws {
        let p = try PatchedImage("parallels-64k.hdd", format: .parallels)
        let tracks = try p.leValue(28, width: 4)
        let entries = try p.leValue(32, width: 4)
        try p.patch(0, Array("WithoutFreeSpace".utf8))
        for i in 0 ..< entries {
            let e = try p.leValue(64 + i * 4, width: 4)
            if e != 0 { try p.le(64 + i * 4, e * tracks, width: 4) }
        }
        let device = try p.open()
        try Qcow2ImageTests.compare(device, with: try p.oracle(), unit: 65536, label: "WithoutFreeSpace")
        try OtherFormatChecks.infoMatches(p.path)
    }

    /// An image left "in use" opens read-only and reads as qemu-img reads it.
    @Test func uncleanImagesOpenReadOnly() throws {
        let p = try PatchedImage("parallels-converted.hdd", format: .parallels)
        try p.le(44, UInt64(ParallelsFormat.inUseMagic), width: 4)
        try Qcow2ImageTests.compare(try p.open(), with: try p.oracle(), unit: 1 << 20, label: "inuse")
    }

    @Test(arguments: [
        (UInt64(16), UInt64(3), 4, "version 3 is not 2"),
        (0, 0x41, 1, "bad signature"),
        (28, 0, 4, "zero sectors per cluster"),
        (28, 0x7FFF_FFFF, 4, "too big"),
        (32, 0xFFFF_FFFF, 4, "more than imagemount's limit"),
        (32, (8 << 20) - 1, 4, "runs past the end of the file"),
        (36, UInt64.max, 8, "too large"),
    ] as [(UInt64, UInt64, Int, String)])
    func damagedHeaderFields(_ offset: UInt64, _ value: UInt64, _ width: Int, _ words: String) throws {
        let p = try PatchedImage("parallels-converted.hdd", format: .parallels)
        try p.le(offset, value, width: width)
        VHDCorruptionTests.expectError([p.path, "Parallels header", words]) { _ = try p.open() }
    }

    /// The largest BAT entry stays inside 64-bit offsets and reads as zeros past the file's end
    /// (as QEMU reads past EOF); a cluster size that no longer fits is refused at open.
    @Test func hugeBATEntryReadsPastTheFile() throws {
        let p = try PatchedImage("parallels-64k.hdd", format: .parallels)
        let expected = try p.oracle()
        try p.le(64, 0xFFFF_FFFF, width: 4)
        try p.le(28, 0x00FF_FFFF, width: 4)
        VHDCorruptionTests.expectError(["Parallels header"]) { _ = try p.open() }   // the cluster size no longer fits the BAT
        try p.le(28, 128, width: 4)
        let device = try p.open()
        // 0xffffffff clusters of 64 KiB: inside 64 bits, past the file: zeros, as QEMU reads past EOF.
        #expect(try device.readBytes(at: 0, count: 512) == [UInt8](repeating: 0, count: 512))
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 65536, count: 65536), expected[65536 ..< 131072]))
    }
}

/// `check` of Parallels images against `qemu-img check` (messages, counts, exit status).
@Suite struct ParallelsCheckTests {
    static func qemuCheck(_ path: String) throws -> (status: Int32, errors: [String], json: [String: Any]) {
        let r = try Shell.run("qemu-img check -f parallels \(Shell.quote(path))")
        let j = try Shell.run("qemu-img check -f parallels --output=json \(Shell.quote(path))")
        let json = try JSONSerialization.jsonObject(with: j.stdout) as? [String: Any] ?? [:]
        return (r.status, r.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("ERROR") }, json)
    }

    static func expectSame(_ path: String) throws {
        let device = try #require(try ImageOpener.open(path: path, format: .parallels, writable: false) as? ParallelsImage)
        let ours = device.check()
        let theirs = try qemuCheck(path)
        #expect(ours.exitStatus == theirs.status)
        #expect(ours.messages == theirs.errors)
        #expect(ours.allocatedClusters == ((theirs.json["allocated-clusters"] as? NSNumber)?.uint64Value ?? 0))
        #expect(ours.totalClusters == ((theirs.json["total-clusters"] as? NSNumber)?.uint64Value ?? 0))
        #expect(ours.fragmentedClusters == ((theirs.json["fragmented-clusters"] as? NSNumber)?.uint64Value ?? 0))
        #expect(ours.imageEndOffset == ((theirs.json["image-end-offset"] as? NSNumber)?.uint64Value ?? 0))
        #expect(ours.leaks == ((theirs.json["leaks"] as? NSNumber)?.intValue ?? 0))
    }

    @Test(arguments: ParallelsImageTests.names)
    func cleanImages(_ name: String) throws {
        let path = try FormatFixtures.get().path(name)
        try Self.expectSame(path)
        let device = try #require(try ImageOpener.open(path: path, format: .parallels, writable: false) as? ParallelsImage)
        #expect(device.check().exitStatus == 0)
    }

    @Test func outsideClustersUncleanHeaderAndLeaks() throws {
        let p = try PatchedImage("parallels-converted.hdd", format: .parallels)
        try p.le(68, 50, width: 4)                                   // cluster 1 at 50 MiB: outside
        try p.le(44, UInt64(ParallelsFormat.inUseMagic), width: 4)    // not closed cleanly
        try Self.expectSame(p.path)
        let q = try PatchedImage("parallels-converted.hdd", format: .parallels)
        try Shell.check("truncate -s +3M \(Shell.quote(q.path))")      // space after the last cluster
        try Self.expectSame(q.path)
        let device = try #require(try q.open() as? ParallelsImage)
        #expect(device.check().leaks == 3 && device.check().exitStatus == 3)
    }
}
