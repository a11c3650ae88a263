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

/// Tests `Sources/GuestFS/Disk/GPT.swift` and `GUID.swift`: tables written by sgdisk are compared
/// with `sfdisk --json`, `partx` and `blkid`; damaged headers and entry arrays are made here.
extension DiskTests {
@Suite struct GPTTests {
    static let primaryHeader: UInt64 = 512
    static let primaryEntries: UInt64 = 1024

    /// An 8 MiB disk with three named partitions of different types, the second legacy-bootable.
    static func standardImage() throws -> DiskImageFixture {
        let image = try DiskImageFixture(megabytes: 8)
        try image.sgdisk("-n 1:2048:+1M -t 1:EF00 -c 1:'EFI system' "
                         + "-n 2:0:+2501K -t 2:8300 -c 2:'root fs' "
                         + "-n 4:0:0 -t 4:8E00 -c 4:'lvm ü' -A 2:set:2")
        return image
    }

    static func expectSameAsOracle(_ table: PartitionTable, _ image: DiskImageFixture) throws {
        let oracle = try image.sfdiskJSON()
        let uuids = try image.partxUUIDs()
        #expect(table.kind == .gpt)
        #expect(oracle.label == "gpt")
        #expect(table.diskIdentifier == oracle.id)
        #expect(table.partitions.map(\.number) == oracle.partitions.map(\.number))
        for (ours, theirs) in zip(table.partitions, oracle.partitions) {
            #expect(ours.name == "/dev/sda\(theirs.number)")
            #expect(ours.start == theirs.start * 512)
            #expect(ours.size == theirs.size * 512)
            #expect(ours.gptType == theirs.type)
            #expect(ours.partUUID == theirs.uuid?.lowercased())
            #expect(ours.partUUID == uuids[theirs.number])
            #expect(ours.partLabel == theirs.name)
            #expect(ours.bootable == (theirs.attrs?.contains("LegacyBIOSBootable") ?? false))
            #expect(ours.mbrType == nil && !ours.isExtendedContainer)
            #expect(ours.device.displayName == ours.name && ours.device.size == ours.size)
        }
    }

    @Test func sgdiskPartitionsMatchSfdiskAndBlkid() throws {
        let image = try Self.standardImage()
        let table = try #require(try image.readTable())
        #expect(table.warnings == [])
        #expect(table.partitions.map(\.number) == [1, 2, 4])
        #expect(table.partitions.map(\.partLabel) == ["EFI system", "root fs", "lvm ü"])
        #expect(table.partitions.map(\.bootable) == [false, true, false])
        #expect(table.partitions.first?.gptType == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        try Self.expectSameAsOracle(table, image)
        let ptuuid = try Shell.check("blkid -p -s PTUUID -o value \(Shell.quote(image.path))")
        #expect(table.diskIdentifier?.lowercased() == ptuuid.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func damagedPrimaryHeaderFallsBackToTheBackup() throws {
        let image = try Self.standardImage()
        let before = try #require(try image.readTable())
        // Damage: flip one byte of the disk GUID inside the primary header, so its CRC32 fails.
        let byte = try image.bytes(at: Self.primaryHeader + 56, count: 1)[0]
        try image.patch(at: Self.primaryHeader + 56, [byte ^ 0xFF])
        let table = try #require(try image.readTable())
        let backupOffset = 8 * 1024 * 1024 - 512
        #expect(table.warnings.count == 1)
        let warning = try #require(table.warnings.first)
        #expect(warning.hasPrefix("/dev/sda: primary GPT header at 0x200 is damaged (bad header CRC32"))
        #expect(warning.hasSuffix("using the backup header at 0x\(String(backupOffset, radix: 16))"))
        #expect(table.diskIdentifier == before.diskIdentifier)
        #expect(table.partitions.map(\.start) == before.partitions.map(\.start))
        #expect(table.partitions.map(\.partLabel) == before.partitions.map(\.partLabel))
        // sfdisk (libfdisk) falls back to the backup too, so it remains an oracle.
        try Self.expectSameAsOracle(table, image)
    }

    @Test func damagedPrimaryEntryArrayFallsBackToTheBackup() throws {
        let image = try Self.standardImage()
        let before = try #require(try image.readTable())
        // Damage: change a letter of entry 0's name ("EFI system" → "XFI system") in the primary array.
        try image.patch(at: Self.primaryEntries + 56, [UInt8(ascii: "X")])
        let table = try #require(try image.readTable())
        #expect(table.warnings.count == 1)
        #expect(table.warnings.first?.hasPrefix(
            "/dev/sda: primary GPT partition entry array at 0x400 is damaged (bad CRC32") == true)
        #expect(table.partitions.map(\.partLabel) == ["EFI system", "root fs", "lvm ü"])
        #expect(table.partitions.map(\.partUUID) == before.partitions.map(\.partUUID))
    }

    @Test func damagedBackupIsReportedButThePrimaryIsUsed() throws {
        let image = try Self.standardImage()
        // Damage: zero the backup header in the last sector.
        try image.patch(at: 8 * 1024 * 1024 - 512, [UInt8](repeating: 0, count: 512))
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1, 2, 4])
        #expect(table.warnings == ["/dev/sda: backup GPT header at 0x7ffe00: missing (the sector is blank); using the primary GPT"])
    }

    /// The image lost its last 2 MiB: the primary still works, the partition reaching into the
    /// lost part is skipped, and both losses are reported.
    @Test func truncatedImageKeepsThePartitionsThatStillFit() throws {
        let image = try Self.standardImage()
        try image.truncate(megabytes: 6)
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1, 2])
        #expect(table.warnings.count == 2)
        #expect(table.warnings.contains { $0.hasPrefix("/dev/sda: backup GPT header should be at LBA 16383, past the end") })
        #expect(table.warnings.contains { $0.hasPrefix("/dev/sda: /dev/sda4 (GPT entry 3 at 0x580)") && $0.contains("past the end") })
    }

    @Test func damagedPrimaryWithTheBackupTruncatedAwayIsAnError() throws {
        let image = try Self.standardImage()
        try image.truncate(megabytes: 6)
        try image.patch(at: Self.primaryHeader + 24, [0x07])   // Damage: MyLBA 1 → 7, and the CRC fails.
        let disk = try image.open()
        let error = try #require(throws: ImageError.self) { try PartitionTable.read(from: disk, diskName: "/dev/sda") }
        #expect(error.path == image.path)
        #expect(error.offset == 0x200)
        #expect(error.structure == "/dev/sda primary GPT header")
        #expect(error.reason.contains("bad header CRC32"))
        #expect(error.reason.contains("no usable backup either (backup GPT header at 0x5ffe00: "))
        #expect(error.description.hasPrefix("\(image.path): /dev/sda primary GPT header at 0x200: bad header CRC32"))
    }

    @Test func guidsPrintMixedEndian() {
        let esp: [UInt8] = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]
        #expect(GUID(bytes: esp).uppercased == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
        #expect(GUID(bytes: esp).lowercased == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
        #expect(GUID(bytes: [UInt8](repeating: 0, count: 16)).isZero)
        #expect(!GUID(bytes: esp).isZero)
    }
}
}
