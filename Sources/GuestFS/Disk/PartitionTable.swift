import GuestFSBlock

/// The partition-table layer (DESIGN.md §1, `Disk/`): finds the partitions of one disk and hands
/// each out as a `SliceDevice` named the way libguestfs names it (`/dev/sda1`, logical MBR
/// partitions from `/dev/sda5`).
///
/// What is read, and from where:
/// - sector 0: the MBR (`MBR.swift`). Its 0xEE protective entry means "read the GPT".
/// - sector 1 and the last sector: the primary and backup GPT headers (`GPT.swift`).
/// - the EBR chain of each MBR extended partition (`MBR.swift`).
///
/// Policy for damaged tables: a problem that loses the whole table (a protective MBR whose GPT
/// headers are both unusable, an unreadable sector 0) throws `ImageError`. A problem that loses
/// one partition or the tail of an EBR chain (a partition past the end of the disk, an EBR loop)
/// becomes one line in `warnings`, and everything found before it is kept.

/// Which kind of partition table a disk carries.
public enum PartitionTableKind: String, Sendable {
    case mbr
    case gpt
}

/// One partition of a disk.
public struct Partition: Sendable {
    /// 1-based partition number: the MBR slot (1–4) or logical index (5, 6, …), or GPT entry index + 1.
    public let number: Int
    /// The libguestfs device name, e.g. `/dev/sda1`.
    public let name: String
    /// Offset of the first byte, from the start of the disk.
    public let start: UInt64
    /// Size in bytes.
    public let size: UInt64
    /// The partition as a block device, named `name`.
    public let device: SliceDevice
    /// MBR system id (0x83 Linux, 0x05/0x0f/0x85 extended, 0x8e LVM, 0x82 swap, …); nil for GPT.
    public let mbrType: UInt8?
    /// GPT partition type GUID, uppercase canonical form; nil for MBR.
    public let gptType: String?
    /// GPT unique partition GUID, lowercase as blkid prints `PARTUUID`. For MBR, blkid's synthetic
    /// `PARTUUID`: the disk signature as 8 hex digits, a dash, the number as 2 hex digits
    /// (`1234abcd-05`, `1234abcd-0a`); nil when the disk signature is zero, as blkid gives none.
    public let partUUID: String?
    /// GPT partition name (UTF-16LE on disk); nil for MBR and for unnamed GPT partitions.
    public let partLabel: String?
    /// MBR active flag (0x80) or GPT attribute bit 2, "Legacy BIOS Bootable".
    public let bootable: Bool
    /// True for the MBR extended partition itself, which holds EBRs rather than a filesystem.
    public let isExtendedContainer: Bool

    public init(number: Int, name: String, start: UInt64, size: UInt64, device: SliceDevice,
                mbrType: UInt8? = nil, gptType: String? = nil, partUUID: String? = nil,
                partLabel: String? = nil, bootable: Bool = false, isExtendedContainer: Bool = false) {
        self.number = number
        self.name = name
        self.start = start
        self.size = size
        self.device = device
        self.mbrType = mbrType
        self.gptType = gptType
        self.partUUID = partUUID
        self.partLabel = partLabel
        self.bootable = bootable
        self.isExtendedContainer = isExtendedContainer
    }
}

/// The partition table of one disk.
public struct PartitionTable: Sendable {
    /// The sector size every offset in MBR and GPT counts in, unless the caller says otherwise.
    /// imagemount reads disk images, which carry no logical block size of their own; QEMU
    /// presents them with 512-byte sectors unless told otherwise (libguestfs's --blocksize=4096,
    /// QEMU's logical_block_size=4096, for 4Kn disks).
    public static let sectorSize: UInt64 = 512
    /// The sector sizes `read(from:diskName:sectorSize:)` accepts.
    public static let supportedSectorSizes: Set<UInt64> = [512, 4096]

    public let kind: PartitionTableKind
    /// MBR disk signature as `0x1234abcd`, or the GPT disk GUID (uppercase, as sfdisk prints it).
    public let diskIdentifier: String?
    /// The usable partitions, in partition-number order.
    public let partitions: [Partition]
    /// One line per problem that cost a partition or part of the table, each starting with the disk
    /// name, e.g. `/dev/sda: EBR at 0x100000: chain loops back to an EBR already read; ...`.
    public let warnings: [String]

    public init(kind: PartitionTableKind, diskIdentifier: String?, partitions: [Partition], warnings: [String]) {
        self.kind = kind
        self.diskIdentifier = diskIdentifier
        self.partitions = partitions
        self.warnings = warnings
    }

    /// Reads the partition table of `disk`, naming its partitions after `diskName` (`/dev/sda`).
    ///
    /// Returns nil when the disk has no partition table: sector 0 lacks the 0x55AA signature or
    /// is not an MBR (a whole-disk filesystem, or a blank disk). The caller then treats the whole
    /// disk as one filesystem. Throws `ImageError` when a table is there but cannot be used at all.
    ///
    /// `sectorSize` (512 or 4096) is the unit of the table's LBAs.
    public static func read(from disk: any BlockDevice, diskName: String,
                            sectorSize: UInt64 = PartitionTable.sectorSize) throws -> PartitionTable? {
        precondition(supportedSectorSizes.contains(sectorSize), "sector size \(sectorSize) is not 512 or 4096")
        guard disk.size >= sectorSize else { return nil }
        let sector0: [UInt8]
        do {
            sector0 = try disk.readBytes(at: 0, count: Int(sectorSize))
        } catch {
            throw ImageError(path: disk.displayName, offset: 0, structure: "\(diskName) MBR",
                             reason: "cannot read sector 0", underlying: error)
        }
        guard let mbr = MBRSector(sector0) else { return nil }
        if mbr.isProtective {
            return try GPTReader(disk: disk, diskName: diskName, sectorSize: sectorSize).read()
        }
        return MBRReader(disk: disk, diskName: diskName, sectorSize: sectorSize).read(mbr)
    }
}

/// Where decoders record partitions and warnings as they go, sharing the slice-making and the
/// bounds check every partition passes before it is handed out.
struct PartitionCollector {
    let disk: any BlockDevice
    let diskName: String
    let sectorSize: UInt64
    private(set) var partitions: [Partition] = []
    private(set) var warnings: [String] = []

    init(disk: any BlockDevice, diskName: String, sectorSize: UInt64 = PartitionTable.sectorSize) {
        self.disk = disk
        self.diskName = diskName
        self.sectorSize = sectorSize
    }

    /// Adds one `/dev/sdXN` line to the warnings.
    mutating func warn(_ text: String) { warnings.append("\(diskName): \(text)") }

    /// Adds a partition of `sectors` sectors at `startSector`, or warns and skips it when it is
    /// empty or does not lie within the disk (reading it would fail). `describe` names the table
    /// entry it came from, for the warning.
    mutating func add(number: Int, startSector: UInt64, sectors: UInt64, describe: String,
                      mbrType: UInt8? = nil, gptType: String? = nil, partUUID: String? = nil,
                      partLabel: String? = nil, bootable: Bool = false, isExtendedContainer: Bool = false) {
        let name = partitionName(diskName: diskName, number: number)
        let (start, o1) = startSector.multipliedReportingOverflow(by: sectorSize)
        let (size, o2) = sectors.multipliedReportingOverflow(by: sectorSize)
        let (end, o3) = start.addingReportingOverflow(size)
        guard !o1, !o2, !o3, end <= disk.size else {
            warn("\(name) (\(describe)): sectors \(startSector)+\(sectors) run past the end of the disk "
                 + "(\(disk.size / sectorSize) sectors); partition skipped")
            return
        }
        // A partition may start at sector 0, over the table itself: isohybrid images describe
        // their whole ISO so (MBR record 1, type 0), and Linux and blkid show it as sdX1.
        do {
            let device = try SliceDevice(base: disk, start: start, size: size, name: name)
            partitions.append(Partition(number: number, name: name, start: start, size: size, device: device,
                                        mbrType: mbrType, gptType: gptType, partUUID: partUUID,
                                        partLabel: partLabel, bootable: bootable,
                                        isExtendedContainer: isExtendedContainer))
        } catch {
            warn("\(name) (\(describe)): \(error); partition skipped")
        }
    }

    func table(kind: PartitionTableKind, diskIdentifier: String?) -> PartitionTable {
        PartitionTable(kind: kind, diskIdentifier: diskIdentifier,
                       partitions: partitions.sorted { $0.number < $1.number }, warnings: warnings)
    }
}

extension PartitionTable {
    /// `0x` and `value` in hex, for byte offsets in messages.
    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
}
