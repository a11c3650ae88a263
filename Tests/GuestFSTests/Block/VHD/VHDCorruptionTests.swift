import Foundation
import SystemPackage
import Testing
import TestSupport
@testable import GuestFSBlock

/// Damaged VHD images, made by patching bytes of qemu-img's: a one-line error at open, or EIO
/// for the damaged range with the rest readable; never a crash, a hang or a huge allocation.
@Suite struct VHDCorruptionTests {
    /// A private copy of a fixture, with big-endian patch helpers that keep the footer checksum right.
    final class Damaged {
        let dir: TempDir
        let path: String
        init(_ fixture: String) throws {
            dir = try TempDir("imagemount-vhd-bad")
            path = dir.file(fixture)
            try FileManager.default.copyItem(atPath: try FormatFixtures.get().path(fixture), toPath: path)
        }
        /// Patches `path` in place (no copy).
        init(copyOf path: String) throws {
            dir = try TempDir("imagemount-vhd-bad")
            self.path = path
        }
        func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
            try RawImage(path: path, writable: false).readBytes(at: offset, count: count)
        }
        func u64(_ offset: UInt64) throws -> UInt64 { try bytes(at: offset, count: 8).reduce(0) { $0 << 8 | UInt64($1) } }
        func u32(_ offset: UInt64) throws -> UInt32 { try bytes(at: offset, count: 4).reduce(0) { $0 << 8 | UInt32($1) } }
        func patch(_ offset: UInt64, _ bytes: [UInt8]) throws { try RawImage(path: path, writable: true).writeBytes(bytes, at: offset) }
        func patch32(_ offset: UInt64, _ v: UInt32) throws { try patch(offset, (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }) }
        func patch64(_ offset: UInt64, _ v: UInt64) throws { try patch(offset, (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) }) }
        /// Patches the footer copy at 0 and rewrites its checksum (so the damage is what is tested).
        func patchFooter(_ field: UInt64, _ bytes: [UInt8]) throws {
            try patch(field, bytes)
            var footer = try self.bytes(at: 0, count: 512)
            footer.replaceSubrange(64 ..< 68, with: [0, 0, 0, 0])
            try patch32(64, ~footer.reduce(UInt32(0)) { $0 &+ UInt32($1) })
        }
        var headerOffset: UInt64 { get throws { try u64(16) } }
        func open() throws -> any BlockDevice { try ImageOpener.open(path: path, format: .vpc, writable: false) }
    }

    static func expectError(_ words: [String], _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error mentioning \(words)")
        } catch let e as ImageError {
            for w in words { #expect(e.description.contains(w), "'\(e.description)' lacks '\(w)'") }
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func badFooterChecksum() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patch(40, [0xFF])
        Self.expectError(["VHD footer at 0x40", "checksum"]) { _ = try d.open() }
    }

    @Test func badFixedFooterChecksum() throws {
        let d = try Damaged("vpc-fixed.vhd")
        let size = UInt64(try FileManager.default.attributesOfItem(atPath: d.path)[.size] as! Int)
        try d.patch(size - 512 + 48, [0x7F])
        Self.expectError(["VHD footer", "checksum"]) { _ = try d.open() }
    }

    @Test func geometryAbove2040GiB() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patchFooter(28, Array("win ".utf8))
        try d.patchFooter(48, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        Self.expectError(["2040 GiB"]) { _ = try d.open() }
    }

    @Test func headerOffsetOutsideTheFile() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patchFooter(16, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x00])
        Self.expectError(["VHD footer", "outside the file"]) { _ = try d.open() }
    }

    @Test func blockSizeNotAPowerOfTwo() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patch32(try d.headerOffset + 32, 3000)
        Self.expectError(["VHD dynamic disk header", "block size 3000"]) { _ = try d.open() }
    }

    @Test func blockSizeTinyNeedsAHugeTable() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patchFooter(28, Array("win ".utf8))
        try d.patchFooter(48, [0, 0, 0x01, 0, 0, 0, 0, 0])   // 1 TiB
        try d.patch32(try d.headerOffset + 28, 0xFFFF_FFFF)
        try d.patch32(try d.headerOffset + 32, 512)
        Self.expectError(["limit of"]) { _ = try d.open() }
    }

    @Test func tableTooSmallForTheDisk() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patch32(try d.headerOffset + 28, 1)
        Self.expectError(["do not cover"]) { _ = try d.open() }
    }

    @Test func tableOutsideTheFile() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patch64(try d.headerOffset + 16, 0x7FFF_FFFF_FFFF_FFF0)
        Self.expectError(["BAT", "past the end of the file"]) { _ = try d.open() }
    }

    @Test func badHeaderCookie() throws {
        let d = try Damaged("vpc-converted.vhd")
        try d.patch(try d.headerOffset, Array("cxsparsf".utf8))
        Self.expectError(["cxsparse"]) { _ = try d.open() }
    }

    @Test func truncatedFile() throws {
        let d = try Damaged("vpc-converted.vhd")
        try Shell.check("truncate -s 100 \(Shell.quote(d.path))")
        Self.expectError(["too small"]) { _ = try d.open() }
    }

    /// A BAT entry pointing past the end fails reads of its block only.
    @Test func batEntryPastTheEndFailsOnlyItsBlock() throws {
        let d = try Damaged("vpc-converted.vhd")
        let bat = try d.u64(try d.headerOffset + 16)
        try d.patch32(bat + 4, 0x7FFF_0000)      // block 1: guest 2 MiB ..< 4 MiB
        let device = try d.open()
        let expected = try FormatFixtures.get().oracle("vpc-converted.vhd")
        Self.expectError(["VHD BAT at 0x\(String(bat + 4, radix: 16))", "entry 1"]) { _ = try device.readBytes(at: 3 << 20, count: 10) }
        do {
            _ = try device.readBytes(at: (2 << 20) - 5, count: 10)
            Issue.record("a read into the damaged block succeeded")
        } catch let e as ImageError { #expect(e.errno == .ioError) }
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 0, count: 2 << 20), expected[0 ..< (2 << 20)]))
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 4 << 20, count: 4096), expected[(4 << 20) ..< ((4 << 20) + 4096)]))
    }

    @Test func notAVHD() throws {
        let dir = try TempDir("imagemount-vhd-bad")
        let path = dir.file("zero.vhd")
        try Data(count: 4096).write(to: URL(fileURLWithPath: path))
        Self.expectError(["conectix"]) { _ = try ImageOpener.open(path: path, format: .vpc, writable: false) }
    }
}
