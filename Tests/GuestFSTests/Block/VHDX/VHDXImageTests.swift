import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// VHDX images made by qemu-img (dynamic, fixed, block and sector sizes), read as
/// `qemu-img convert -f vhdx -O raw` reads them; damaged headers, region table, metadata, BAT.
@Suite struct VHDXImageTests {
    static let names = FormatFixtures.images.filter { $0.format == .vhdx }.map(\.name)

    @Test("vhdx reads equal qemu-img convert -O raw", arguments: names)
    func matchesOracle(_ name: String) throws {
        let f = try FormatFixtures.get()
        let device = try ImageOpener.open(path: f.path(name), format: nil, writable: false)
        #expect(device is VHDXImage)
        try Qcow2ImageTests.compare(device, with: try f.oracle(name), unit: 512 * 1024, label: name)
    }

    @Test("info is qemu-img info's", arguments: names)
    func infoMatches(_ name: String) throws {
        let f = try FormatFixtures.get()
        let info = try ImageInfo.gather(path: f.path(name))
        #expect(ImageInfo.json(info, chain: false) == (try Shell.check("qemu-img info --output=json \(Shell.quote(f.path(name)))")))
        #expect(ImageInfo.text(info) == (try Shell.check("qemu-img info \(Shell.quote(f.path(name)))")))
    }

    /// A private copy with little-endian patch helpers that can re-stamp a header's CRC-32C.
    final class Damaged {
        let dir: TempDir
        let path: String
        init(_ fixture: String) throws {
            dir = try TempDir("imagemount-vhdx-bad")
            path = dir.file(fixture)
            try FileManager.default.copyItem(atPath: try FormatFixtures.get().path(fixture), toPath: path)
        }
        func bytes(_ at: UInt64, _ n: Int) throws -> [UInt8] { try RawImage(path: path, writable: false).readBytes(at: at, count: n) }
        func u64(_ at: UInt64) throws -> UInt64 { try bytes(at, 8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func u32(_ at: UInt64) throws -> UInt32 { try bytes(at, 4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func patch(_ at: UInt64, _ b: [UInt8]) throws { try RawImage(path: path, writable: true).writeBytes(b, at: at) }
        func patch32(_ at: UInt64, _ v: UInt32) throws { try patch(at, (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }) }
        func patch64(_ at: UInt64, _ v: UInt64) throws { try patch(at, (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }) }
        /// Re-stamps the CRC-32C of the structure of `size` bytes at `at` (checksum at +4).
        func restamp(_ at: UInt64, size: Int) throws {
            try patch32(at + 4, VHDXFormat.crc32c(try bytes(at, size), checksumAt: 4))
        }
        func open() throws -> any BlockDevice { try ImageOpener.open(path: path, format: .vhdx, writable: false) }
        /// The region table's entry for `guid`: (file offset, length).
        func region(_ guid: [UInt8]) throws -> (UInt64, UInt32) {
            let table = try bytes(192 * 1024, 64 * 1024)
            let count = Int(try u32(192 * 1024 + 8))
            for i in 0 ..< count where Array(table[16 + 32 * i ..< 32 + 32 * i]) == guid {
                return (try u64(192 * 1024 + UInt64(32 + 32 * i)), try u32(192 * 1024 + UInt64(40 + 32 * i)))
            }
            throw ImageError(reason: "no region")
        }
    }

    @Test func oneDamagedHeaderLeavesTheOther() throws {
        let d = try Damaged("vhdx-1m.vhdx")
        try d.patch(64 * 1024 + 30, [0xEE])
        let device = try d.open()
        try Qcow2ImageTests.compare(device, with: try FormatFixtures.get().oracle("vhdx-1m.vhdx"), unit: 1 << 20, label: "one header")
        try d.patch(128 * 1024 + 30, [0xEE])
        VHDCorruptionTests.expectError(["VHDX header", "CRC-32C"]) { _ = try d.open() }
    }

    /// A log GUID over a log with no valid entry is an empty log (VHDXLogTests has real ones).
    @Test func dirtyGUIDWithAnEmptyLogOpens() throws {
        let d = try Damaged("vhdx-1m.vhdx")
        for at: UInt64 in [64 * 1024, 128 * 1024] {
            try d.patch(at + 48, [UInt8](repeating: 0x42, count: 16))
            try d.restamp(at, size: 4096)
        }
        try Qcow2ImageTests.compare(try d.open(), with: try FormatFixtures.get().oracle("vhdx-1m.vhdx"), unit: 1 << 20, label: "empty log")
    }

    @Test func badRegionTables() throws {
        let d = try Damaged("vhdx-1m.vhdx")
        try d.patch(192 * 1024 + 100, [0x01])
        _ = try d.open()   // the copy at 256 KiB serves
        try d.patch(256 * 1024 + 100, [0x01])
        VHDCorruptionTests.expectError(["VHDX region table", "CRC-32C"]) { _ = try d.open() }
    }

    @Test func regionOutsideTheFile() throws {
        let d = try Damaged("vhdx-1m.vhdx")
        for at: UInt64 in [192 * 1024, 256 * 1024] {
            try d.patch64(at + 16 + 16, 0x7FFF_FFFF_FFF0_0000)
            try d.restamp(at, size: 64 * 1024)
        }
        VHDCorruptionTests.expectError(["VHDX region table", "outside"]) { _ = try d.open() }
    }

    @Test func badMetadataItems() throws {
        let d = try Damaged("vhdx-1m.vhdx")
        let (meta, _) = try d.region(VHDXFormat.metadataRegion)
        let count = Int(try d.bytes(meta + 10, 2)[0])
        var params: UInt64?
        var sizeItem: UInt64?
        for i in 0 ..< count {
            let e = meta + UInt64(32 + 32 * i)
            let guid = try d.bytes(e, 16)
            if guid == VHDXFormat.fileParameters { params = meta + UInt64(try d.u32(e + 16)) }
            if guid == VHDXFormat.virtualDiskSize { sizeItem = meta + UInt64(try d.u32(e + 16)) }
        }
        let p = try #require(params), s = try #require(sizeItem)
        try d.patch32(p, 3 << 20)
        VHDCorruptionTests.expectError(["VHDX file parameters", "block size 3145728"]) { _ = try d.open() }
        try d.patch32(p, 1 << 20)
        try d.patch32(p + 4, 2)
        VHDCorruptionTests.expectError(["differencing VHDX"]) { _ = try d.open() }
        try d.patch32(p + 4, 0)
        try d.patch64(s, .max)
        VHDCorruptionTests.expectError(["VHDX virtual disk size", "64 TiB"]) { _ = try d.open() }
        try d.patch64(s, 60 << 40)
        VHDCorruptionTests.expectError(["VHDX BAT"]) { _ = try d.open() }
        try d.patch32(meta + 10, 3000)
        VHDCorruptionTests.expectError(["VHDX metadata table", "3000 entries"]) { _ = try d.open() }
    }

    /// A payload entry that is partially present or points past the end fails its block only.
    @Test func damagedBATEntriesFailTheirBlockOnly() throws {
        let d = try Damaged("vhdx-1m.vhdx")
        let (bat, _) = try d.region(VHDXFormat.batRegion)
        try d.patch64(bat + 8, 7)                              // block 1: partially present
        try d.patch64(bat + 16, (0xFFFF_FF << 20) | 6)         // block 2: far past the end
        let device = try d.open()
        let expected = try FormatFixtures.get().oracle("vhdx-1m.vhdx")
        VHDCorruptionTests.expectError(["VHDX BAT at 0x\(String(bat + 8, radix: 16))", "entry 1", "block state 7"]) {
            _ = try device.readBytes(at: (1 << 20) + 3, count: 10)
        }
        VHDCorruptionTests.expectError(["VHDX BAT at 0x\(String(bat + 16, radix: 16))", "entry 2", "outside the file"]) {
            _ = try device.readBytes(at: (2 << 20) + 3, count: 10)
        }
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 0, count: 1 << 20), expected[0 ..< (1 << 20)]))
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 3 << 20, count: 1 << 20), expected[(3 << 20) ..< (4 << 20)]))
    }

    @Test func tooSmallAndNotVHDX() throws {
        let dir = try TempDir("imagemount-vhdx-bad")
        let small = dir.file("small.vhdx")
        try Data(Array("vhdxfile".utf8) + [UInt8](repeating: 0, count: 1000)).write(to: URL(fileURLWithPath: small))
        VHDCorruptionTests.expectError(["too small"]) { _ = try ImageOpener.open(path: small, format: .vhdx, writable: false) }
        let zero = dir.file("zero.vhdx")
        try Data(count: 400 * 1024).write(to: URL(fileURLWithPath: zero))
        VHDCorruptionTests.expectError(["vhdxfile"]) { _ = try ImageOpener.open(path: zero, format: .vhdx, writable: false) }
    }
}
