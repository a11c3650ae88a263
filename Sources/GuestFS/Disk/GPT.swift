import GuestFSBlock
import SystemZlib

/// The GUID Partition Table: a header at LBA 1 and a backup header in the last sector, each
/// pointing to an array of partition entries, each CRC32-protected.
///
/// Layouts: UEFI spec 2.10, §5.3.2 "GPT Header" (Table 5-5) and §5.3.3 "GPT Partition Entry
/// Array" (Tables 5-6 and 5-7). Validity follows §5.3.2: the signature, the header CRC32, MyLBA
/// equal to the LBA the header was read from, then the entry array CRC32; "if the primary GPT is
/// corrupt, software must check the last LBA of the device to see if it has a valid GPT Header".

/// Why a GPT header or its entry array cannot be used, and where.
struct GPTProblem: Error {
    /// Byte offset of the structure on the disk.
    let offset: UInt64
    /// "primary GPT header", "backup GPT partition entry array", …
    let structure: String
    let reason: String

    var text: String { "\(structure) at \(PartitionTable.hex(offset)): \(reason)" }
}

/// A GPT header (UEFI spec 2.10, Table 5-5 "GPT Header"), checked as §5.3.2 asks.
struct GPTHeader {
    /// "EFI PART" read as a little-endian 64-bit integer (Table 5-5, Signature).
    static let signature: UInt64 = 0x5452_4150_2049_4645
    /// HeaderSize bounds: the fields up to PartitionEntryArrayCRC32 (92 bytes), and at most one
    /// sector (Table 5-5: "must be greater than or equal to 92 and must be less than or equal to
    /// the logical block size").
    static let minHeaderSize = 92
    /// SizeOfPartitionEntry is 128 × 2^n (Table 5-5).
    static let minEntrySize = 128
    /// Largest entry array we read. The spec sets no upper bound; 4 MiB is 32768 entries of
    /// 128 bytes (tools make 128), and keeps a crafted header from costing unbounded memory.
    static let maxEntryArrayBytes = 4 << 20

    /// Byte offsets of the fields (Table 5-5).
    private enum Field {
        static let signature = 0, headerSize = 12, headerCRC32 = 16, myLBA = 24, alternateLBA = 32
        static let firstUsableLBA = 40, lastUsableLBA = 48, diskGUID = 56, partitionEntryLBA = 72
        static let numberOfPartitionEntries = 80, sizeOfPartitionEntry = 84, partitionEntryArrayCRC32 = 88
    }

    let myLBA: UInt64
    let alternateLBA: UInt64
    let firstUsableLBA: UInt64
    let lastUsableLBA: UInt64
    let diskGUID: GUID
    let partitionEntryLBA: UInt64
    let numberOfPartitionEntries: Int
    let sizeOfPartitionEntry: Int
    let partitionEntryArrayCRC32: UInt32

    var entryArrayBytes: Int { numberOfPartitionEntries * sizeOfPartitionEntry }

    /// Decodes the sector read from `lba` (at byte `offset`), or throws what makes it unusable.
    /// `structure` names it in the problem ("primary GPT header").
    init(sector: [UInt8], lba: UInt64, diskSectors: UInt64, structure: String,
         sectorSize: UInt64 = PartitionTable.sectorSize) throws(GPTProblem) {
        let offset = lba * sectorSize
        func problem(_ reason: String) -> GPTProblem { GPTProblem(offset: offset, structure: structure, reason: reason) }
        let bytes = LittleEndianBytes(sector)

        guard bytes.u64(Field.signature) == Self.signature else {
            throw problem(bytes.isZero(0, bytes.count) ? "missing (the sector is blank)" : "no \"EFI PART\" signature")
        }
        let headerSize = Int(bytes.u32(Field.headerSize))
        guard headerSize >= Self.minHeaderSize, headerSize <= sector.count else {
            throw problem("header size \(headerSize) is outside \(Self.minHeaderSize)...\(sector.count)")
        }
        // The CRC32 covers HeaderSize bytes with the HeaderCRC32 field itself taken as zero.
        var covered = Array(sector[0 ..< headerSize])
        covered.replaceSubrange(Field.headerCRC32 ..< Field.headerCRC32 + 4, with: [0, 0, 0, 0])
        let stored = bytes.u32(Field.headerCRC32)
        let computed = crc32Of(covered)
        guard stored == computed else {
            throw problem("bad header CRC32 (stored \(PartitionTable.hex(UInt64(stored))), "
                          + "computed \(PartitionTable.hex(UInt64(computed))))")
        }
        myLBA = bytes.u64(Field.myLBA)
        guard myLBA == lba else { throw problem("MyLBA is \(myLBA), not the LBA it was read from (\(lba))") }
        alternateLBA = bytes.u64(Field.alternateLBA)
        firstUsableLBA = bytes.u64(Field.firstUsableLBA)
        lastUsableLBA = bytes.u64(Field.lastUsableLBA)
        guard firstUsableLBA <= lastUsableLBA else {
            throw problem("first usable LBA \(firstUsableLBA) is after the last usable LBA \(lastUsableLBA)")
        }
        diskGUID = GUID(bytes: bytes.slice(Field.diskGUID, 16))
        partitionEntryLBA = bytes.u64(Field.partitionEntryLBA)

        let count = UInt64(bytes.u32(Field.numberOfPartitionEntries))
        let entrySize = UInt64(bytes.u32(Field.sizeOfPartitionEntry))
        let multiple = entrySize / UInt64(Self.minEntrySize)
        guard entrySize % UInt64(Self.minEntrySize) == 0, multiple > 0, multiple & (multiple - 1) == 0 else {
            throw problem("partition entry size \(entrySize) is not 128 × 2^n")
        }
        guard count * entrySize <= UInt64(Self.maxEntryArrayBytes) else {
            throw problem("partition entry array of \(count) × \(entrySize) bytes is larger than "
                          + "the \(Self.maxEntryArrayBytes)-byte limit")
        }
        numberOfPartitionEntries = Int(count)
        sizeOfPartitionEntry = Int(entrySize)
        partitionEntryArrayCRC32 = bytes.u32(Field.partitionEntryArrayCRC32)

        let arraySectors = (count * entrySize + sectorSize - 1) / sectorSize
        guard partitionEntryLBA < diskSectors, arraySectors <= diskSectors - partitionEntryLBA else {
            throw problem("partition entry array at LBA \(partitionEntryLBA) (\(arraySectors) sectors) "
                          + "runs past the end of the disk (\(diskSectors) sectors)")
        }
        guard partitionEntryLBA > myLBA || partitionEntryLBA + arraySectors <= myLBA else {
            throw problem("partition entry array at LBA \(partitionEntryLBA) overlaps the header")
        }
    }
}

/// One GPT partition entry (UEFI spec 2.10, Table 5-6 "GPT Partition Entry").
struct GPTPartitionEntry {
    /// Byte offsets of the fields (Table 5-6).
    private enum Field {
        static let partitionTypeGUID = 0, uniquePartitionGUID = 16, startingLBA = 32, endingLBA = 40
        static let attributes = 48, partitionName = 56
    }
    /// PartitionName: 72 bytes, 36 UTF-16LE code units, NUL-terminated when shorter.
    static let nameUnits = 36
    /// Attributes bit 2, "Legacy BIOS Bootable" (Table 5-7 "Defined GPT Partition Entry - Attributes").
    static let legacyBIOSBootable: UInt64 = 1 << 2

    let partitionType: GUID
    let uniquePartition: GUID
    let startingLBA: UInt64
    /// Inclusive.
    let endingLBA: UInt64
    let attributes: UInt64
    let name: String

    init(_ array: LittleEndianBytes, at offset: Int) {
        partitionType = GUID(bytes: array.slice(offset + Field.partitionTypeGUID, 16))
        uniquePartition = GUID(bytes: array.slice(offset + Field.uniquePartitionGUID, 16))
        startingLBA = array.u64(offset + Field.startingLBA)
        endingLBA = array.u64(offset + Field.endingLBA)
        attributes = array.u64(offset + Field.attributes)
        var units: [UInt16] = []
        for i in 0 ..< Self.nameUnits {
            let unit = array.u16(offset + Field.partitionName + 2 * i)
            if unit == 0 { break }
            units.append(unit)
        }
        name = String(decoding: units, as: UTF16.self)
    }

    /// An all-zero type GUID marks an unused entry (Table 5-6, PartitionTypeGUID).
    var isUnused: Bool { partitionType.isZero }
}

/// Reads the GPT of a disk whose MBR is protective, falling back to the backup header.
struct GPTReader {
    let disk: any BlockDevice
    let diskName: String
    /// The unit of every LBA: 512, or 4096 for a 4Kn disk (`--blocksize`).
    var sectorSize: UInt64 = PartitionTable.sectorSize

    private var diskSectors: UInt64 { disk.size / sectorSize }

    /// A header whose entry array was read and passed its CRC32.
    private struct LoadedGPT {
        let header: GPTHeader
        let entries: LittleEndianBytes
    }

    func read() throws -> PartitionTable {
        var collector = PartitionCollector(disk: disk, diskName: diskName, sectorSize: sectorSize)
        let lastLBA = diskSectors - 1   // the caller made sure the disk holds sector 0
        let primaryLBA: UInt64 = 1

        let chosen: LoadedGPT
        switch load(lba: primaryLBA, role: "primary") {
        case .success(let primary):
            chosen = primary
            checkBackup(of: primary.header, lastLBA: lastLBA, into: &collector)
        case .failure(let primaryProblem):
            // Where the backup may be: the last sector (UEFI §5.3.2), and where an intact primary
            // header says it is, when only the primary entry array was bad.
            var candidates: [UInt64] = [lastLBA]
            if let alternate = primaryProblem.header?.alternateLBA, alternate != lastLBA, alternate < diskSectors,
               alternate > primaryLBA {
                candidates.append(alternate)
            }
            var backupProblems: [GPTProblem] = []
            var found: LoadedGPT?
            for lba in candidates where lba > primaryLBA {
                switch load(lba: lba, role: "backup") {
                case .success(let backup): found = backup
                case .failure(let problem): backupProblems.append(problem.problem)
                }
                if found != nil { break }
            }
            guard let backup = found else {
                let backupText = backupProblems.isEmpty
                    ? "the disk is too small to hold a backup GPT header"
                    : backupProblems.map(\.text).joined(separator: "; ")
                throw ImageError(path: disk.displayName, offset: primaryProblem.problem.offset,
                                 structure: "\(diskName) \(primaryProblem.problem.structure)",
                                 reason: "\(primaryProblem.problem.reason); no usable backup either (\(backupText))",
                                 errno: .ioError)
            }
            chosen = backup
            collector.warn("\(primaryProblem.problem.structure) at \(PartitionTable.hex(primaryProblem.problem.offset)) "
                           + "is damaged (\(primaryProblem.problem.reason)); using the backup header at "
                           + PartitionTable.hex(backup.header.myLBA * sectorSize))
        }

        let header = chosen.header
        for index in 0 ..< header.numberOfPartitionEntries {
            let entry = GPTPartitionEntry(chosen.entries, at: index * header.sizeOfPartitionEntry)
            if entry.isUnused { continue }
            let number = index + 1
            let entryOffset = header.partitionEntryLBA * sectorSize
                + UInt64(index * header.sizeOfPartitionEntry)
            let describe = "GPT entry \(index) at \(PartitionTable.hex(entryOffset))"
            guard entry.endingLBA >= entry.startingLBA else {
                collector.warn("\(partitionName(diskName: diskName, number: number)) (\(describe)): "
                               + "ending LBA \(entry.endingLBA) is before starting LBA \(entry.startingLBA); "
                               + "partition skipped")
                continue
            }
            let span = entry.endingLBA - entry.startingLBA
            collector.add(number: number, startSector: entry.startingLBA,
                          sectors: span == .max ? .max : span + 1, describe: describe,
                          gptType: entry.partitionType.uppercased, partUUID: entry.uniquePartition.lowercased,
                          partLabel: entry.name.isEmpty ? nil : entry.name,
                          bootable: entry.attributes & GPTPartitionEntry.legacyBIOSBootable != 0)
        }
        return collector.table(kind: .gpt, diskIdentifier: header.diskGUID.uppercased)
    }

    /// When the primary is good, says so if the backup is missing or damaged: the table still
    /// works, but a later failure of the primary would lose it.
    private func checkBackup(of primary: GPTHeader, lastLBA: UInt64, into collector: inout PartitionCollector) {
        let alternate = primary.alternateLBA
        guard alternate < diskSectors else {
            collector.warn("backup GPT header should be at LBA \(alternate), past the end of the disk "
                           + "(\(diskSectors) sectors); the image may be truncated")
            return
        }
        if case .failure(let problem) = load(lba: alternate, role: "backup") {
            collector.warn("\(problem.problem.text); using the primary GPT")
        } else if alternate != lastLBA {
            collector.warn("backup GPT header is at LBA \(alternate), not in the last sector (\(lastLBA)); "
                           + "the disk may have been enlarged")
        }
    }

    /// A failed load: the problem, and the header when only its entry array was bad.
    private struct LoadFailure: Error {
        let problem: GPTProblem
        let header: GPTHeader?
    }

    /// Reads and checks the header at `lba` and its entry array.
    private func load(lba: UInt64, role: String) -> Result<LoadedGPT, LoadFailure> {
        let headerStructure = "\(role) GPT header"
        let offset = lba * sectorSize
        let sector: [UInt8]
        do {
            sector = try disk.readBytes(at: offset, count: Int(sectorSize))
        } catch {
            return .failure(LoadFailure(problem: GPTProblem(offset: offset, structure: headerStructure,
                                                            reason: "cannot be read (\(error))"), header: nil))
        }
        let header: GPTHeader
        do {
            header = try GPTHeader(sector: sector, lba: lba, diskSectors: diskSectors, structure: headerStructure,
                                   sectorSize: sectorSize)
        } catch {
            return .failure(LoadFailure(problem: error, header: nil))
        }

        let arrayStructure = "\(role) GPT partition entry array"
        let arrayOffset = header.partitionEntryLBA * sectorSize
        let array: [UInt8]
        do {
            array = try disk.readBytes(at: arrayOffset, count: header.entryArrayBytes)
        } catch {
            return .failure(LoadFailure(problem: GPTProblem(offset: arrayOffset, structure: arrayStructure,
                                                            reason: "cannot be read (\(error))"), header: header))
        }
        let computed = crc32Of(array)
        guard computed == header.partitionEntryArrayCRC32 else {
            let reason = "bad CRC32 (header says \(PartitionTable.hex(UInt64(header.partitionEntryArrayCRC32))), "
                + "computed \(PartitionTable.hex(UInt64(computed))))"
            return .failure(LoadFailure(problem: GPTProblem(offset: arrayOffset, structure: arrayStructure, reason: reason),
                                        header: header))
        }
        return .success(LoadedGPT(header: header, entries: LittleEndianBytes(array)))
    }
}

/// The CRC32 that GPT uses (UEFI spec 2.10, §5.3.2: the ISO 3309 / ITU-T V.42 polynomial, as zlib's
/// `crc32` computes it).
private func crc32Of(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBufferPointer { buffer in
        UInt32(truncatingIfNeeded: crc32(0, buffer.baseAddress, uInt(buffer.count)))
    }
}
