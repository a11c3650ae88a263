import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import Testing
import TestSupport

/// QEMU's raw-driver rule (block/raw-format.c, raw_check_write): an image whose format was
/// probed as raw refuses a write that would make its first sector probe as another format.
@Suite struct RawImageProbedHeaderTests {
    /// The magic and version 3: qcow2's probe, like QEMU's, wants a version of 2 or more.
    static let qcow2Magic: [UInt8] = [0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3]

    @Test func probedRawRefusesAnImageHeaderInSectorZero() throws {
        let dir = try TempDir()
        let path = dir.file("disk.img")
        try Shell.check("truncate -s 1M \(Shell.quote(path))")
        do {
        let probed = try ImageOpener.open(path: path, options: ImageOpenOptions(writable: true))
        do {
            try probed.writeBytes(Self.qcow2Magic, at: 0)
            Issue.record("the qcow2 magic was written")
        } catch let e as ImageError {
            #expect(e.errno == .notPermitted && e.description.contains("--format=raw"), "\(e.description)")
        }
        // Byte by byte: the last byte completing the header is the one refused.
        try probed.writeBytes(Array(Self.qcow2Magic.prefix(7)), at: 0)
        #expect(throws: ImageError.self) { try probed.writeBytes([0x03], at: 7) }
        // Other data in sector 0 (a boot sector), and the magic anywhere else, are fine.
        try probed.writeBytes([0xEB, 0x63, 0x90], at: 0)
        try probed.writeBytes(Self.qcow2Magic, at: 512)
        #expect(try probed.readBytes(at: 0, count: 8) == [0xEB, 0x63, 0x90, 0xFB, 0, 0, 0, 0])
        }  // closed: its lock goes with it
        // --format=raw vouches for the image: the write is the user's.
        let given = try ImageOpener.open(path: path, options: ImageOpenOptions(format: .raw, writable: true))
        try given.writeBytes(Self.qcow2Magic, at: 0)
        #expect(try given.readBytes(at: 0, count: 8) == Self.qcow2Magic)
    }
}
