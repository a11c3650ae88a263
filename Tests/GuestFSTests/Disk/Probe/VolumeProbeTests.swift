import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// The volume probe on what real tools make: every slice inside what it read.
@Suite struct VolumeProbeTests {
    @Test func btrfsFromMkfsBtrfs() throws {
        guard (try? Shell.run("command -v mkfs.btrfs"))?.status == 0 else {
            Issue.record("mkfs.btrfs missing: scripts/install-deps.sh installs btrfs-progs"); return
        }
        let image = try HostileImage("btrfs.img") { p in
            try Shell.check("truncate -s 128M \(Shell.quote(p)) && mkfs.btrfs -q -f -L probe-label -U 0badc0de-0000-4000-8000-00000000b7f5 \(Shell.quote(p))")
        }
        let content = VolumeProbe.probe(try RawImage(path: image.path, writable: false))
        #expect(content.type == "btrfs")
        #expect(content.label == "probe-label")
        #expect(content.uuid == "0badc0de-0000-4000-8000-00000000b7f5")
        // A label of the full 256 bytes, no NUL: read to the end of the superblock's field.
        try image.patch(0x10000 + 0x12B, [UInt8](repeating: 0x41, count: 256))
        #expect(VolumeProbe.probe(try RawImage(path: image.path, writable: false)).label == String(repeating: "A", count: 256))
    }

    @Test func wholeDiskExtUnderAnEmptyMBRSignature() throws {
        let image = try HostileImage("disk.img") { p in
            try Shell.check("truncate -s 8M \(Shell.quote(p)) && mke2fs -q -F -t ext4 -L whole \(Shell.quote(p))")
        }
        // The 55 AA boot signature at 510 over an MBR whose four entries are all zero.
        try image.patch(510, [0x55, 0xAA])
        let guest = try Guest(drives: [DriveSpec(path: image.path, format: .raw)])
        #expect(guest.extFilesystems.map(\.name) == ["/dev/sda"])
        #expect(try guest.device(named: "/dev/sda").content.label == "whole")
        // An invalid entry (a partition past the end of the disk) hides nothing either.
        try image.patch(446 + 4, [0x83])
        try image.patchLE(446 + 8, 2048, bytes: 4)
        try image.patchLE(446 + 12, 1 << 30, bytes: 4)
        let again = try Guest(drives: [DriveSpec(path: image.path, format: .raw)])
        #expect(again.extFilesystems.map(\.name) == ["/dev/sda"])
        #expect(!again.warnings.isEmpty)
    }
}
