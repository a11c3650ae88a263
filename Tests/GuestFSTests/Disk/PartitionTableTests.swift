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

/// Tests `Sources/GuestFS/Disk/PartitionTable.swift` (the entry point: table or no table) and
/// `DiskName.swift`.
extension DiskTests {
@Suite struct PartitionTableTests {
    @Test func wholeDiskExt4HasNoPartitionTable() throws {
        let image = try DiskImageFixture(megabytes: 4)
        try Shell.check("mke2fs -q -F -t ext4 \(Shell.quote(image.path))")
        let probe = try Shell.check("blkid -p -s TYPE -o value \(Shell.quote(image.path))")
        #expect(probe.trimmingCharacters(in: .whitespacesAndNewlines) == "ext4")
        #expect(try image.readTable() == nil)
    }

    @Test func blankDiskHasNoPartitionTable() throws {
        let image = try DiskImageFixture(megabytes: 1)
        #expect(try image.readTable() == nil)
    }

    @Test func diskSmallerThanASectorHasNoPartitionTable() throws {
        let image = try DiskImageFixture(megabytes: 0)
        try Shell.check("truncate -s 100 \(Shell.quote(image.path))")
        #expect(try image.readTable() == nil)
    }

    /// A boot sector ending in 0x55AA whose "records" hold boot flags other than 0x00/0x80 is a
    /// filesystem's boot sector (FAT, NTFS), not an MBR.
    @Test func bootSectorThatIsNotAnMBRHasNoPartitionTable() throws {
        let image = try DiskImageFixture(megabytes: 2)
        try image.patch(at: 446, [0x33, 0xC0, 0x8E, 0xD0, 0x83, 0, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0])
        try image.patch(at: 510, [0x55, 0xAA])
        #expect(try image.readTable() == nil)
        try image.patch(at: 446, [0x80])   // a valid boot flag makes it an MBR with one partition
        #expect(try image.readTable()?.partitions.map(\.number) == [1])
    }

    /// A protective MBR with no GPT behind it at all is an error, not "no table".
    @Test func protectiveMBRWithoutAnyGPTIsAnError() throws {
        let image = try DiskImageFixture(megabytes: 1)
        try image.patch(at: 446, [0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0xFF, 0x07, 0, 0])
        try image.patch(at: 510, [0x55, 0xAA])
        let error = try #require(throws: ImageError.self) { try image.readTable() }
        #expect(error.structure == "/dev/sda primary GPT header")
        #expect(error.reason.hasPrefix("missing (the sector is blank); no usable backup either (backup GPT header at 0xffe00: missing"))
    }

    @Test func unreadableSectorZeroIsAnError() throws {
        let disk = FailingDevice(size: 1 << 20)
        let error = try #require(throws: ImageError.self) { try PartitionTable.read(from: disk, diskName: "/dev/sdc") }
        #expect(error.structure == "/dev/sdc MBR")
        #expect(error.offset == 0)
        #expect(error.description.contains("cannot read sector 0"))
    }

    @Test func diskNamesFollowLinux() {
        #expect(diskName(index: 0) == "/dev/sda")
        #expect(diskName(index: 1) == "/dev/sdb")
        #expect(diskName(index: 25) == "/dev/sdz")
        #expect(diskName(index: 26) == "/dev/sdaa")
        #expect(diskName(index: 27) == "/dev/sdab")
        #expect(diskName(index: 701) == "/dev/sdzz")
        #expect(diskName(index: 702) == "/dev/sdaaa")
        #expect(partitionName(diskName: "/dev/sdb", number: 5) == "/dev/sdb5")
        #expect(partitionName(diskName: "/dev/nbd0", number: 1) == "/dev/nbd0p1")
    }
}
}

extension DiskTests {
/// A device whose every read fails, as a dying disk or a broken qcow2 would.
final class FailingDevice: BlockDevice {
    let size: UInt64
    init(size: UInt64) { self.size = size }
    var isWritable: Bool { false }
    var displayName: String { "failing.img" }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        throw ImageError(path: displayName, offset: offset, structure: "read", reason: "injected I/O error")
    }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }
    func flush() throws {}
}
}
