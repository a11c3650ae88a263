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

/// Tests `Sources/GuestFS/Disk/MBR.swift`: tables written by sfdisk are compared with what
/// `sfdisk --json` and `partx` (libblkid) read back; damaged EBR chains are made here, byte by byte.
extension DiskTests {
@Suite struct MBRTests {
    /// Byte offset of MBR/EBR partition record `slot` (0-based), UEFI spec Table 5-1.
    static func recordOffset(sector: UInt64, slot: Int) -> UInt64 { sector * 512 + 446 + UInt64(slot) * 16 }

    /// 2 primaries (one bootable), an extended partition with 3 logical ones, odd sizes.
    static func standardImage() throws -> DiskImageFixture {
        let image = try DiskImageFixture(megabytes: 20)
        try image.sfdisk("""
            label: dos
            label-id: 0x1234abcd
            ,3001,83,*
            ,2501,8e
            ,,5
            ,1111,83
            ,2223,82
            ,,83
            """)
        return image
    }

    /// The sectors of the EBRs of the first extended partition, walking the chain the way the
    /// DOS convention lays it out (link start relative to the first EBR).
    static func ebrSectors(_ image: DiskImageFixture, extendedStart: UInt64) throws -> [UInt64] {
        var sectors = [extendedStart]
        while sectors.count < 16 {
            let link = recordOffset(sector: sectors.last!, slot: 1)
            let size = try image.le32(at: link + 12)
            if size == 0 { break }
            sectors.append(extendedStart + UInt64(try image.le32(at: link + 8)))
        }
        return sectors
    }

    @Test func primaryExtendedAndLogicalPartitionsMatchSfdisk() throws {
        let image = try Self.standardImage()
        let oracle = try image.sfdiskJSON()
        let uuids = try image.partxUUIDs()
        let table = try #require(try image.readTable())

        #expect(table.kind == .mbr)
        #expect(oracle.label == "dos")
        #expect(table.diskIdentifier == oracle.id)
        #expect(table.warnings == [])
        #expect(table.partitions.map(\.number) == [1, 2, 3, 5, 6, 7])
        #expect(table.partitions.map(\.number) == oracle.partitions.map(\.number))
        for (ours, theirs) in zip(table.partitions, oracle.partitions) {
            #expect(ours.name == "/dev/sda\(theirs.number)")
            #expect(ours.start == theirs.start * 512)
            #expect(ours.size == theirs.size * 512)
            #expect(ours.mbrType.map { String($0, radix: 16) } == theirs.type)
            #expect(ours.bootable == theirs.bootable)
            #expect(ours.partUUID == uuids[theirs.number])
            #expect(ours.isExtendedContainer == (theirs.type == "5"))
            #expect(ours.gptType == nil && ours.partLabel == nil)
            #expect(ours.device.displayName == ours.name)
            #expect(ours.device.start == ours.start && ours.device.size == ours.size)
        }
        #expect(table.partitions.first?.partUUID == "1234abcd-01")
    }

    @Test func partitionDevicesReadTheirOwnBytes() throws {
        let image = try Self.standardImage()
        let table = try #require(try image.readTable(diskName: "/dev/sdb"))
        let logical = try #require(table.partitions.first { $0.number == 6 })
        #expect(logical.name == "/dev/sdb6")
        let marker = Array("imagemount logical 6".utf8)
        try image.patch(at: logical.start + 512, marker)
        #expect(try logical.device.readBytes(at: 512, count: marker.count) == marker)
        #expect(throws: ImageError.self) { try logical.device.readBytes(at: logical.size - 1, count: 2) }
    }

    /// A filesystem made inside logical partition 7 is found by blkid at our partition's offset,
    /// and its superblock magic reads through our partition device.
    @Test func filesystemInALogicalPartitionIsWhereWeSayItIs() throws {
        let image = try Self.standardImage()
        let table = try #require(try image.readTable())
        let logical = try #require(table.partitions.last)
        #expect(logical.number == 7)
        try Shell.check("mke2fs -q -F -t ext4 -E offset=\(logical.start) \(Shell.quote(image.path)) \(logical.size / 1024)k")
        let probe = try Shell.check("blkid -p -o export --offset \(logical.start) --size \(logical.size) \(Shell.quote(image.path))")
        #expect(probe.split(separator: "\n").contains("TYPE=ext4"))
        // ext4 superblock at byte 1024, s_magic 0xEF53 at offset 0x38 (ext4 disk layout, "The Super Block").
        #expect(try logical.device.readBytes(at: 1024 + 0x38, count: 2) == [0x53, 0xEF])
        // The table is unchanged by the filesystem inside it.
        #expect(try image.readTable()?.partitions.map(\.start) == table.partitions.map(\.start))
    }

    /// blkid's synthetic MBR PARTUUID prints the number as `%02x`: partition 10 is `-0a`.
    @Test func manyLogicalPartitionsNumberOnAndUseHexPartUUIDs() throws {
        let image = try DiskImageFixture(megabytes: 24)
        try image.sfdisk("label: dos\nlabel-id: 0xdeadbeef\n,2048,83\n,,f\n"
                         + String(repeating: ",1000,83\n", count: 8))
        let oracle = try image.sfdiskJSON()
        let uuids = try image.partxUUIDs()
        let table = try #require(try image.readTable())
        #expect(table.warnings == [])
        #expect(table.partitions.map(\.number) == [1, 2] + Array(5 ... 12))
        #expect(table.partitions.map(\.number) == oracle.partitions.map(\.number))
        #expect(table.partitions.map(\.start) == oracle.partitions.map { $0.start * 512 })
        #expect(table.partitions.map(\.partUUID) == oracle.partitions.map { uuids[$0.number] })
        #expect(table.partitions.first { $0.number == 10 }?.partUUID == "deadbeef-0a")
        #expect(table.partitions.first { $0.number == 2 }?.isExtendedContainer == true)
    }

    @Test func primaryPartitionPastTheEndIsSkippedWithAWarning() throws {
        let image = try DiskImageFixture(megabytes: 8)
        try image.sfdisk("label: dos\n,3000,83\n,4000,83\n")
        // Damage: record 2 claims 0x00ffffff sectors (8 GiB) on an 8 MiB disk.
        try image.patch(at: Self.recordOffset(sector: 0, slot: 1) + 12, image.le32Bytes(0x00ff_ffff))
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1])
        #expect(table.warnings.count == 1)
        let warning = try #require(table.warnings.first)
        #expect(warning.hasPrefix("/dev/sda: /dev/sda2 (MBR partition record 2 at 0x1ce)"))
        #expect(warning.contains("past the end of the disk"))
    }

    @Test func ebrChainLoopingBackKeepsTheLogicalPartitionsBeforeTheLoop() throws {
        let image = try Self.standardImage()
        let extendedStart = UInt64(try image.le32(at: Self.recordOffset(sector: 0, slot: 2) + 8))
        let ebrs = try Self.ebrSectors(image, extendedStart: extendedStart)
        #expect(ebrs.count == 3)
        // Damage: the second EBR's link points back at the first EBR (relative start 0).
        try image.patch(at: Self.recordOffset(sector: ebrs[1], slot: 1) + 8, image.le32Bytes(0))
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1, 2, 3, 5, 6])
        #expect(table.warnings == ["/dev/sda: EBR at 0x\(String(extendedStart * 512, radix: 16)) (in /dev/sda3): "
            + "the EBR chain loops back to an EBR already read; keeping the logical partitions found before the loop"])
    }

    @Test func ebrLinkingToItselfStopsAfterOneLogicalPartition() throws {
        let image = try Self.standardImage()
        let extendedStart = UInt64(try image.le32(at: Self.recordOffset(sector: 0, slot: 2) + 8))
        // Damage: the first EBR's link points at the first EBR itself.
        try image.patch(at: Self.recordOffset(sector: extendedStart, slot: 1) + 8, image.le32Bytes(0))
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1, 2, 3, 5])
        #expect(table.warnings.count == 1)
        #expect(table.warnings.first?.contains("loops back") == true)
    }

    @Test func ebrPastTheEndOfTheDiskStopsTheChain() throws {
        let image = try Self.standardImage()
        let extendedStart = UInt64(try image.le32(at: Self.recordOffset(sector: 0, slot: 2) + 8))
        // Damage: the first EBR's link points 1 Mi sectors (512 MiB) into a 20 MiB disk.
        try image.patch(at: Self.recordOffset(sector: extendedStart, slot: 1) + 8, image.le32Bytes(0x10_0000))
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1, 2, 3, 5])
        let expectedEBR = (extendedStart + 0x10_0000) * 512
        #expect(table.warnings == ["/dev/sda: EBR at 0x\(String(expectedEBR, radix: 16)) (in /dev/sda3): "
            + "lies past the end of the disk (20971520 bytes); ignoring the rest of the chain"])
    }

    @Test func ebrWithoutSignatureStopsTheChain() throws {
        let image = try Self.standardImage()
        let extendedStart = UInt64(try image.le32(at: Self.recordOffset(sector: 0, slot: 2) + 8))
        let ebrs = try Self.ebrSectors(image, extendedStart: extendedStart)
        // Damage: the third EBR loses its 0x55AA.
        try image.patch(at: ebrs[2] * 512 + 510, [0, 0])
        let table = try #require(try image.readTable())
        #expect(table.partitions.map(\.number) == [1, 2, 3, 5, 6])
        #expect(table.warnings.count == 1)
        #expect(table.warnings.first?.contains("EBR at 0x\(String(ebrs[2] * 512, radix: 16))") == true)
        #expect(table.warnings.first?.contains("no valid EBR signature") == true)
    }

    /// A chain of 200 EBRs, each with a one-sector logical partition, written here by hand.
    @Test func logicalPartitionsAreCappedAt128() throws {
        let image = try DiskImageFixture(megabytes: 4)
        func record(type: UInt8, start: UInt32, size: UInt32) -> [UInt8] {
            [0, 0, 0, 0, type, 0, 0, 0] + image.le32Bytes(start) + image.le32Bytes(size)
        }
        let extendedStart: UInt64 = 2048
        try image.patch(at: 440, image.le32Bytes(0x0102_0304))
        try image.patch(at: Self.recordOffset(sector: 0, slot: 0), record(type: 0x05, start: 2048, size: 4096))
        try image.patch(at: 510, [0x55, 0xAA])
        let count = 200
        for k in 0 ..< count {
            let ebr = extendedStart + UInt64(3 * k)
            try image.patch(at: Self.recordOffset(sector: ebr, slot: 0), record(type: 0x83, start: 1, size: 2))
            if k + 1 < count {
                try image.patch(at: Self.recordOffset(sector: ebr, slot: 1),
                                record(type: 0x05, start: UInt32(3 * (k + 1)), size: 3))
            }
            try image.patch(at: ebr * 512 + 510, [0x55, 0xAA])
        }
        let table = try #require(try image.readTable())
        #expect(table.diskIdentifier == "0x01020304")
        #expect(table.partitions.count == 1 + 128)
        #expect(table.partitions.last?.number == 132)
        #expect(table.partitions.last?.start == (extendedStart + 3 * 127 + 1) * 512)
        #expect(table.warnings.count == 1)
        #expect(table.warnings.first?.contains("more than 128 logical partitions") == true)
    }

    /// A table with the signature but no records is an MBR with no partitions, not "no table".
    @Test func emptyDosLabelHasNoPartitions() throws {
        let image = try DiskImageFixture(megabytes: 2)
        try image.sfdisk("label: dos\nlabel-id: 0x0000abcd\n")
        let table = try #require(try image.readTable())
        #expect(table.kind == .mbr)
        #expect(table.diskIdentifier == "0x0000abcd")
        #expect(table.partitions.isEmpty && table.warnings.isEmpty)
    }
}
}
