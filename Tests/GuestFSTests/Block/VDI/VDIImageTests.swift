import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// VDI images made by qemu-img (dynamic and static=on), read as `qemu-img convert -f vdi -O raw`
/// reads them; damaged headers and block maps.
@Suite struct VDIImageTests {
    static let names = FormatFixtures.images.filter { $0.format == .vdi }.map(\.name)

    @Test("vdi reads equal qemu-img convert -O raw", arguments: names)
    func matchesOracle(_ name: String) throws {
        let f = try FormatFixtures.get()
        let device = try ImageOpener.open(path: f.path(name), format: nil, writable: false)
        #expect(device is VDIImage)
        try Qcow2ImageTests.compare(device, with: try f.oracle(name), unit: 256 * 1024, label: name)
    }

    @Test("info is qemu-img info's", arguments: names)
    func infoMatches(_ name: String) throws {
        let f = try FormatFixtures.get()
        let info = try ImageInfo.gather(path: f.path(name))
        let theirs = try Shell.check("qemu-img info --output=json \(Shell.quote(f.path(name)))")
        #expect(ImageInfo.json(info, chain: false).replacingOccurrences(of: f.path(name), with: "X")
                == theirs.replacingOccurrences(of: f.path(name), with: "X"))
        let text = try Shell.check("qemu-img info \(Shell.quote(f.path(name)))")
        #expect(ImageInfo.text(info) == text)
    }

    /// A private copy with little-endian patch helpers.
    final class Damaged {
        let dir: TempDir
        let path: String
        init(_ fixture: String) throws {
            dir = try TempDir("imagemount-vdi-bad")
            path = dir.file(fixture)
            try FileManager.default.copyItem(atPath: try FormatFixtures.get().path(fixture), toPath: path)
        }
        func u32(_ offset: UInt64) throws -> UInt32 {
            try RawImage(path: path, writable: false).readBytes(at: offset, count: 4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        func patch32(_ offset: UInt64, _ v: UInt32) throws {
            try RawImage(path: path, writable: true).writeBytes((0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }, at: offset)
        }
        func patch64(_ offset: UInt64, _ v: UInt64) throws {
            try RawImage(path: path, writable: true).writeBytes((0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }, at: offset)
        }
        func open() throws -> any BlockDevice { try ImageOpener.open(path: path, format: .vdi, writable: false) }
    }

    @Test(arguments: [
        (UInt64(0x44), UInt32(0x0001_0002), "version 1.2"),
        (0x154, 0x1FF, "block map offset 0x1ff"),
        (0x158, 0x201, "data offset 0x201"),
        (0x168, 4096, "sector size 4096"),
        (0x178, 4096, "block size 4096"),
        (0x180, 1, "needs more than the 1 blocks"),
        (0x1B8, 1, "parent UUID"),
        (0x1A8, 1, "link UUID"),
        (0x154, 0x7FFF_FE00, "runs past the end of the file"),
    ])
    func damagedHeaderFields(_ offset: UInt64, _ value: UInt32, _ words: String) throws {
        let d = try Damaged("vdi-converted.vdi")
        try d.patch32(offset, value)
        VHDCorruptionTests.expectError(["VDI header", words]) { _ = try d.open() }
    }

    @Test func hugeDiskSizes() throws {
        let d = try Damaged("vdi-converted.vdi")
        try d.patch64(0x170, .max)
        VHDCorruptionTests.expectError(["VDI header at 0x170", "above the largest"]) { _ = try d.open() }
        try d.patch64(0x170, 1 << 45)
        try d.patch32(0x180, VDIFormat.maxBlocksInImage)
        VHDCorruptionTests.expectError(["limit of"]) { _ = try d.open() }
    }

    /// A discarded entry (0xfffffffe) reads as zeros, as in qemu-img; an entry past the end fails its block only.
    @Test func discardedAndOutOfFileEntries() throws {
        let d = try Damaged("vdi-converted.vdi")
        let map = UInt64(try d.u32(0x154))
        try d.patch32(map + 4, VDIFormat.discarded)
        let device = try d.open()
        let oracle = d.dir.file("oracle.raw")
        try Shell.check("qemu-img convert -f vdi -O raw \(Shell.quote(d.path)) \(Shell.quote(oracle))")
        let expected = Array(try Data(contentsOf: URL(fileURLWithPath: oracle)))
        #expect(expected[(1 << 20) ..< (2 << 20)].allSatisfy { $0 == 0 })
        try Qcow2ImageTests.compare(device, with: expected, unit: 1 << 20, label: "discarded")
        try d.patch32(map + 8, 0x00FF_0000)
        let broken = try d.open()
        VHDCorruptionTests.expectError(["VDI block map at 0x\(String(map + 8, radix: 16))", "entry 2"]) {
            _ = try broken.readBytes(at: (2 << 20) + 7, count: 10)
        }
        #expect(Qcow2ImageTests.same(try broken.readBytes(at: 0, count: 2 << 20), expected[0 ..< (2 << 20)]))
    }
}

/// `check` of VDI images against `qemu-img check` (messages, counts, exit status).
@Suite struct VDICheckTests {
    static func qemuCheck(_ path: String) throws -> (status: Int32, stderr: String) {
        let r = try Shell.run("qemu-img check -f vdi \(Shell.quote(path))")
        return (r.status, r.stderr)
    }

    @Test(arguments: ["vdi-converted.vdi", "vdi-static.vdi", "vdi-created.vdi", "vdi-empty.vdi"])
    func cleanImages(_ name: String) throws {
        let path = try FormatFixtures.get().path(name)
        let device = try #require(try ImageOpener.open(path: path, format: .vdi, writable: false) as? VDIImage)
        let result = device.check()
        #expect(result.exitStatus == (try Self.qemuCheck(path).status))
        #expect(result.exitStatus == 0 && result.messages.isEmpty)
    }

    @Test func sharedBlocksTooLargeEntriesAndCountMismatch() throws {
        let d = try VDIImageTests.Damaged("vdi-converted.vdi")
        let map = UInt64(try d.u32(0x154))
        try d.patch32(map + 4, try d.u32(map))     // block 1 uses block 0's data
        try d.patch32(map + 8, 0x3000_0000)         // block 2: outside the image
        let device = try #require(try d.open() as? VDIImage)
        let result = device.check()
        let theirs = try Self.qemuCheck(d.path)
        #expect(result.exitStatus == theirs.status)
        let lines = theirs.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("ERROR") }
        #expect(result.messages == lines)
    }
}
