import GuestFSBlock

/// The MBR partition table: four primary records in sector 0, and for each extended partition a
/// chain of EBRs holding the logical partitions.
///
/// Layouts: UEFI spec 2.10, §5.2.1 "Legacy Master Boot Record (MBR)", Table 5-1 "Legacy MBR" and
/// Table 5-2 "Legacy MBR Partition Record"; the protective MBR is §5.2.3, Table 5-4. The EBR chain
/// is not in the UEFI spec: it follows the DOS convention that Linux (block/partitions/msdos.c) and
/// util-linux (libfdisk/src/dos.c) implement, described in `MBRReader.readLogicals`.

/// One 16-byte partition record (UEFI spec 2.10, Table 5-2 "Legacy MBR Partition Record").
struct MBRPartitionRecord {
    /// Size of one record.
    static let size = 16

    /// 0x80 marks the active (bootable) partition; 0x00 otherwise. Anything else means the sector
    /// is not an MBR (a FAT or NTFS boot sector also ends in 0x55AA).
    let bootIndicator: UInt8
    /// The system id ("OSType"): 0x83 Linux, 0x05/0x0f/0x85 extended, 0xEE GPT protective, …
    let osType: UInt8
    /// First sector: from the disk start for primaries; in an EBR, from that EBR for the data
    /// record and from the first EBR for the link record.
    let startingLBA: UInt32
    /// Length in sectors.
    let sizeInLBA: UInt32

    /// Field offsets within the record (Table 5-2); the CHS fields at 1 and 5 are ignored, as Linux does.
    private enum Field {
        static let bootIndicator = 0, osType = 4, startingLBA = 8, sizeInLBA = 12
    }

    init(_ sector: LittleEndianBytes, at offset: Int) {
        bootIndicator = sector.u8(offset + Field.bootIndicator)
        osType = sector.u8(offset + Field.osType)
        startingLBA = sector.u32(offset + Field.startingLBA)
        sizeInLBA = sector.u32(offset + Field.sizeInLBA)
    }

    /// A zero length marks an unused slot, as Linux (block/partitions/msdos.c, `if (!size)
    /// continue`) and libblkid (partitions/dos.c) read it. Type 0 with a length is a partition:
    /// isohybrid images describe their ISO as one (type 0, from sector 0), and the kernel and
    /// blkid show it as sdX1.
    var isUnused: Bool { sizeInLBA == 0 }

    /// DOS (0x05), Windows LBA (0x0F) and Linux (0x85) extended partitions, as Linux's
    /// `is_extended_partition` recognises them.
    var isExtended: Bool { [0x05, 0x0F, 0x85].contains(osType) }

    /// The GPT protective partition (UEFI spec 2.10, Table 5-4: OSType 0xEE).
    var isGPTProtective: Bool { osType == 0xEE }

    var isActive: Bool { bootIndicator == 0x80 }
}

/// Sector 0 (or an EBR) decoded as an MBR (UEFI spec 2.10, Table 5-1 "Legacy MBR").
struct MBRSector {
    /// Byte offsets in the sector (Table 5-1).
    enum Field {
        /// UniqueMBRDiskSignature, 4 bytes.
        static let diskSignature = 440
        /// PartitionRecord[4], 16 bytes each.
        static let partitionRecords = 446
        /// Signature, 0xAA55 little-endian: bytes 0x55 0xAA.
        static let signature = 510
    }

    /// The UniqueMBRDiskSignature; Linux and blkid call it the disk identifier.
    let diskSignature: UInt32
    let records: [MBRPartitionRecord]

    /// Decodes `sector`, or returns nil when it is not an MBR: no 0x55AA signature (a blank disk, a
    /// whole-disk ext filesystem) or a boot indicator other than 0x00/0x80 (a filesystem boot sector).
    init?(_ sector: [UInt8]) {
        let bytes = LittleEndianBytes(sector)
        guard bytes.count >= 512, bytes.u16(Field.signature) == 0xAA55 else { return nil }
        let records = (0 ..< 4).map {
            MBRPartitionRecord(bytes, at: Field.partitionRecords + $0 * MBRPartitionRecord.size)
        }
        guard records.allSatisfy({ $0.bootIndicator == 0x00 || $0.bootIndicator == 0x80 }) else { return nil }
        self.diskSignature = bytes.u32(Field.diskSignature)
        self.records = records
    }

    /// A protective (or hybrid) MBR: some record has type 0xEE, so the disk is GPT. Linux's
    /// `is_pmbr_valid` and libblkid look at all four records, not only the first.
    var isProtective: Bool { records.contains { $0.isGPTProtective } }
}

/// Reads an MBR partition table and its EBR chains into a `PartitionTable`.
struct MBRReader {
    /// Logical partitions accepted across all EBR chains. DOS sets no limit; Linux stops at its
    /// per-disk minor limit (256) and libfdisk at 60. 128 keeps the work bounded on a crafted chain.
    static let maxLogicalPartitions = 128
    /// EBRs read across all chains. An EBR may hold no data record, so the chain length needs its
    /// own bound besides the partition cap.
    static let maxEBRs = 256
    /// Number of the first logical partition, as Linux and libguestfs number them.
    static let firstLogicalNumber = 5

    let disk: any BlockDevice
    let diskName: String
    /// The unit of every LBA: 512, or 4096 for a 4Kn disk (`--blocksize`).
    var sectorSize: UInt64 = PartitionTable.sectorSize

    func read(_ mbr: MBRSector) -> PartitionTable {
        var collector = PartitionCollector(disk: disk, diskName: diskName, sectorSize: sectorSize)
        let signature = mbr.diskSignature
        // blkid names the table "%08x" of the signature and gives no PARTUUID when it is zero.
        let tableID = signature == 0 ? nil : hex8(signature)
        func partUUID(_ number: Int) -> String? {
            tableID.map { $0 + "-" + hex2(number) }
        }

        var extended: [(number: Int, record: MBRPartitionRecord)] = []
        for (slot, record) in mbr.records.enumerated() where !record.isUnused {
            let number = slot + 1
            let countBefore = collector.partitions.count
            collector.add(number: number, startSector: UInt64(record.startingLBA), sectors: UInt64(record.sizeInLBA),
                          describe: "MBR partition record \(number) at \(PartitionTable.hex(UInt64(MBRSector.Field.partitionRecords + slot * MBRPartitionRecord.size)))",
                          mbrType: record.osType, partUUID: partUUID(number), bootable: record.isActive,
                          isExtendedContainer: record.isExtended)
            // An extended partition that was skipped (past the end) has no EBRs worth following.
            if record.isExtended, collector.partitions.count > countBefore {
                extended.append((number, record))
            }
        }

        var budget = ChainBudget()
        for (number, record) in extended {
            readLogicals(extendedNumber: number, extendedStart: UInt64(record.startingLBA),
                         budget: &budget, into: &collector, partUUID: partUUID)
        }
        return collector.table(kind: .mbr, diskIdentifier: "0x" + hex8(signature))
    }

    /// What the EBR chains of one disk may still cost, shared by all its extended partitions.
    struct ChainBudget {
        var nextNumber = MBRReader.firstLogicalNumber
        var ebrsRead = 0
        var visited: Set<UInt64> = []
        var exhausted = false
    }

    /// Follows the EBR chain of the extended partition that starts at sector `extendedStart`.
    ///
    /// Each EBR is a sector laid out like an MBR. Its data records (non-empty, not extended) are
    /// logical partitions whose start counts from the EBR itself; its first extended-type record
    /// links to the next EBR, whose start counts from the first EBR (the extended partition start).
    /// Logical partitions take numbers from 5 in chain order. The walk stops, keeping what it
    /// found, at an EBR already visited (a loop), an EBR outside the disk or without 0x55AA, or
    /// at the caps on logical partitions and EBRs.
    private func readLogicals(extendedNumber: Int, extendedStart: UInt64, budget: inout ChainBudget,
                              into collector: inout PartitionCollector, partUUID: (Int) -> String?) {
        let diskSectors = disk.size / sectorSize
        let extendedName = partitionName(diskName: diskName, number: extendedNumber)
        var ebrSector = extendedStart
        var isFirst = true
        while !budget.exhausted {
            let ebrOffset = ebrSector * sectorSize   // no overflow: ebrSector < 2^33
            let here = "EBR at \(PartitionTable.hex(ebrOffset)) (in \(extendedName))"
            if budget.visited.contains(ebrSector) {
                collector.warn("\(here): the EBR chain loops back to an EBR already read; "
                               + "keeping the logical partitions found before the loop")
                return
            }
            if budget.ebrsRead >= Self.maxEBRs {
                collector.warn("\(here): more than \(Self.maxEBRs) EBRs; ignoring the rest of the chain")
                budget.exhausted = true
                return
            }
            guard ebrSector < diskSectors else {
                collector.warn("\(here): lies past the end of the disk (\(disk.size) bytes); "
                               + "ignoring the rest of the chain")
                return
            }
            budget.visited.insert(ebrSector)
            budget.ebrsRead += 1

            let bytes: [UInt8]
            do {
                bytes = try disk.readBytes(at: ebrOffset, count: Int(sectorSize))
            } catch {
                collector.warn("\(here): cannot be read (\(error)); ignoring the rest of the chain")
                return
            }
            guard let ebr = MBRSector(bytes) else {
                // A freshly made extended partition with no logical partitions has a zeroed first EBR.
                if !(isFirst && bytes.allSatisfy { $0 == 0 }) {
                    collector.warn("\(here): no valid EBR signature (0x55AA); ignoring the rest of the chain")
                }
                return
            }
            isFirst = false

            for (slot, record) in ebr.records.enumerated() where !record.isUnused && !record.isExtended {
                if budget.nextNumber - Self.firstLogicalNumber >= Self.maxLogicalPartitions {
                    collector.warn("\(here): more than \(Self.maxLogicalPartitions) logical partitions; "
                                   + "ignoring the rest")
                    budget.exhausted = true
                    return
                }
                let number = budget.nextNumber
                budget.nextNumber += 1
                collector.add(number: number, startSector: ebrSector + UInt64(record.startingLBA),
                              sectors: UInt64(record.sizeInLBA),
                              describe: "record \(slot + 1) of \(here)", mbrType: record.osType,
                              partUUID: partUUID(number), bootable: record.isActive)
            }

            guard let link = ebr.records.first(where: { !$0.isUnused && $0.isExtended }) else { return }
            ebrSector = extendedStart + UInt64(link.startingLBA)
        }
    }

    private func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Two lowercase hex digits at least, as blkid's `%02x`.
    private func hex2(_ value: Int) -> String {
        let digits = String(value, radix: 16)
        return digits.count < 2 ? "0" + digits : digits
    }
}
