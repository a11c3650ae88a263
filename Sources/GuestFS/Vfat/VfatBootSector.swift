import GuestFSBlock
import GuestFSFilesystem

/// The FAT boot sector and BIOS parameter block, decoded and checked (Microsoft's FAT
/// specification "fatgen103", §3.1 "BPB", §3.2 "FAT12/FAT16 from offset 36", §3.3 "FAT32 from
/// offset 36", §3.5 "Determination of FAT type"), with the layout derived from it.
///
/// The FAT type is chosen as the Linux kernel does (fs/fat/inode.c, fat_fill_super): FAT32 when
/// the 16-bit FAT size is zero, else FAT12 up to 4084 clusters and FAT16 above. For volumes
/// mkfs.fat and Windows make, that agrees with fatgen103's count-of-clusters rule.
package enum VfatType: Int, Sendable, Equatable {
    case fat12 = 12, fat16 = 16, fat32 = 32
}

struct VfatBootSector: Sendable {
    let type: VfatType
    let bytesPerSector: UInt32
    let sectorsPerCluster: UInt32
    let reservedSectors: UInt32
    let fatCount: UInt32
    /// Sectors of one FAT.
    let fatSectors: UInt32
    let totalSectors: UInt32
    /// Entries of the fixed root directory (FAT12/16); 0 on FAT32.
    let rootEntries: UInt32
    /// First cluster of the root directory (FAT32, BPB_RootClus); 0 on FAT12/16.
    let rootCluster: UInt32
    /// Sector of the FSInfo structure (FAT32, BPB_FSInfo); nil when there is none.
    let fsInfoSector: UInt32?
    /// FAT32 BPB_ExtFlags bit 7: only the active FAT is in use (fatgen103 §3.3).
    let mirroringDisabled: Bool
    let activeFat: UInt32
    /// Data clusters (numbered 2 ..< clusterCount + 2).
    let clusterCount: UInt32
    /// BS_VolID when the extended boot signature (0x28 or 0x29) is there.
    let volumeID: UInt32?
    /// BS_VolLab, trailing spaces kept, when the extended boot signature is there.
    let volumeLabel: [UInt8]?
    /// Offset of the kernel's "state" byte (BS_Reserved1: 37 on FAT12/16, 65 on FAT32).
    let stateOffset: Int
    /// The state byte as read: bit 0 is the kernel's FAT_STATE_DIRTY.
    let state: UInt8

    var clusterSize: UInt32 { bytesPerSector * sectorsPerCluster }
    var fatOffset: UInt64 { UInt64(reservedSectors) * UInt64(bytesPerSector) }
    var fatBytes: UInt64 { UInt64(fatSectors) * UInt64(bytesPerSector) }
    var rootDirectoryOffset: UInt64 { fatOffset + UInt64(fatCount) * fatBytes }
    var rootDirectoryBytes: UInt64 { UInt64(rootEntries) * 32 }
    /// First byte of cluster 2 (fatgen103 §3.5, FirstDataSector).
    var dataOffset: UInt64 {
        let rootSectors = (rootDirectoryBytes + UInt64(bytesPerSector) - 1) / UInt64(bytesPerSector)
        return rootDirectoryOffset + rootSectors * UInt64(bytesPerSector)
    }
    var volumeBytes: UInt64 { UInt64(totalSectors) * UInt64(bytesPerSector) }

    /// Byte offset of data cluster `cluster` (2 ..< clusterCount + 2; checked by the caller).
    func offset(ofCluster cluster: UInt32) -> UInt64 {
        dataOffset + UInt64(cluster - 2) * UInt64(clusterSize)
    }

    /// Whether the first sector looks like a FAT boot sector at all (the checks fat_read_bpb
    /// makes before anything else); cheap, for probes.
    static func looksLikeFat(_ s: [UInt8]) -> Bool {
        guard s.count >= 512 else { return false }
        let b = LittleEndianBytes(s)
        let bps = b.u16(11), spc = b.u8(13)
        return bps >= 512 && bps <= 4096 && bps & (bps - 1) == 0 && spc != 0 && spc & (spc &- 1) == 0
            && b.u16(14) != 0 && b.u8(16) != 0 && (b.u8(21) >= 0xF8 || b.u8(21) == 0xF0)
    }

    /// Decodes the boot sector at the start of `device`.
    static func read(from device: any BlockDevice) throws -> VfatBootSector {
        func bad(_ reason: String, _ offset: UInt64 = 0) -> ImageError {
            ImageError(path: device.displayName, offset: offset, structure: "FAT boot sector", reason: reason,
                       errno: .invalidArgument)
        }
        guard device.size >= 512 else { throw bad("device smaller than one sector") }
        let b = LittleEndianBytes(try device.readBytes(at: 0, count: 512))
        // §3.1: BPB_BytsPerSec 512, 1024, 2048 or 4096; BPB_SecPerClus a power of 2, 1 to 128.
        let bps = UInt32(b.u16(11))
        guard bps >= 512, bps <= 4096, bps & (bps - 1) == 0 else { throw bad("bytes per sector \(bps) invalid", 11) }
        let spc = UInt32(b.u8(13))
        guard spc != 0, spc & (spc - 1) == 0 else { throw bad("sectors per cluster \(spc) invalid", 13) }
        let reserved = UInt32(b.u16(14))
        guard reserved != 0 else { throw bad("no reserved sectors", 14) }
        let fats = UInt32(b.u8(16))
        guard fats != 0 else { throw bad("no FAT copies", 16) }
        // §3.1 BPB_Media: 0xF0 or 0xF8..0xFF (the kernel's fat_valid_media).
        let media = b.u8(21)
        guard media >= 0xF8 || media == 0xF0 else { throw bad("media byte 0x\(String(media, radix: 16)) invalid", 21) }
        let fat16Size = UInt32(b.u16(22))
        let total = b.u16(19) != 0 ? UInt32(b.u16(19)) : b.u32(32)
        guard total != 0 else { throw bad("total sector count is zero", 19) }
        let isFat32 = fat16Size == 0
        let fatSize = isFat32 ? b.u32(36) : fat16Size
        guard fatSize != 0 else { throw bad("FAT size is zero", 36) }
        let rootEntries = UInt32(b.u16(17))
        if isFat32 {
            guard rootEntries == 0 else { throw bad("FAT32 with a fixed root directory", 17) }
        } else {
            // The kernel refuses a root directory that does not fill whole sectors.
            guard rootEntries != 0, (rootEntries * 32) % bps == 0 else {
                throw bad("root directory entries \(rootEntries) not a whole number of sectors", 17)
            }
        }
        // Layout in 64-bit arithmetic: every term is at most 2^32 * 2^12.
        let fatRegion = UInt64(fats) * UInt64(fatSize)
        let rootSectors = UInt64(rootEntries) * 32 / UInt64(bps)
        let dataStart = UInt64(reserved) + fatRegion + rootSectors
        guard dataStart < UInt64(total) else { throw bad("metadata runs past the end of the volume (\(total) sectors)") }
        let clusters64 = (UInt64(total) - dataStart) / UInt64(spc)
        guard clusters64 >= 1 else { throw bad("no data clusters") }
        let type: VfatType = isFat32 ? .fat32 : (clusters64 <= 4084 ? .fat12 : .fat16)
        // The largest cluster number each FAT width can name (fatgen103 §3.5), and what this FAT can hold.
        let maxClusters: UInt64 = type == .fat12 ? 0xFF4 : type == .fat16 ? 0xFFF4 : 0x0FFF_FFF4
        let entriesInFat = UInt64(fatSize) * UInt64(bps) * 8 / UInt64(type.rawValue)
        guard clusters64 <= maxClusters, clusters64 + 2 <= entriesInFat else {
            throw bad("\(clusters64) clusters do not fit a \(type.rawValue)-bit FAT of \(fatSize) sectors", 22)
        }
        let clusters = UInt32(clusters64)
        guard UInt64(reserved) * UInt64(bps) + fatRegion * UInt64(bps) <= device.size else {
            throw bad("FATs run past the end of the device (\(device.size) bytes)")
        }

        var rootCluster: UInt32 = 0, fsInfo: UInt32?, mirrorOff = false, active: UInt32 = 0
        let extended: Int
        if isFat32 {
            // §3.3: BPB_FSVer must be 0; BPB_RootClus a data cluster.
            guard b.u16(42) == 0 else { throw bad("FAT32 version \(b.u16(42)) unknown", 42) }
            rootCluster = b.u32(44)
            guard rootCluster >= 2, UInt64(rootCluster) < UInt64(clusters) + 2 else {
                throw bad("root cluster \(rootCluster) out of range", 44)
            }
            let info = UInt32(b.u16(48))
            if info != 0, info != 0xFFFF, info < reserved { fsInfo = info }
            let flags = b.u16(40)
            mirrorOff = flags & 0x80 != 0
            active = UInt32(flags & 0x0F)
            if mirrorOff, active >= fats { throw bad("active FAT \(active) of \(fats)", 40) }
            extended = 64
        } else {
            extended = 36
        }
        let signature = b.u8(extended + 2)
        let hasExtended = signature == 0x29 || signature == 0x28
        return VfatBootSector(
            type: type, bytesPerSector: bps, sectorsPerCluster: spc, reservedSectors: reserved, fatCount: fats,
            fatSectors: fatSize, totalSectors: total, rootEntries: rootEntries, rootCluster: rootCluster,
            fsInfoSector: fsInfo, mirroringDisabled: mirrorOff, activeFat: mirrorOff ? active : 0,
            clusterCount: clusters, volumeID: hasExtended ? b.u32(extended + 3) : nil,
            volumeLabel: signature == 0x29 ? b.slice(extended + 7, 11) : nil,
            stateOffset: extended + 1, state: b.u8(extended + 1))
    }

    /// The volume ID as blkid shows it: "XXXX-XXXX", high word first.
    var uuidString: String? {
        guard let id = volumeID else { return nil }
        func hex4(_ v: UInt32) -> String {
            let s = String(v, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 4 - s.count)) + s
        }
        return hex4(id >> 16) + "-" + hex4(id & 0xFFFF)
    }
}

/// The FAT32 FSInfo sector (fatgen103 §5 "FAT32 FSInfo Sector Structure"): hints only, which
/// we keep right when we write (fsck.fat compares the free count with the FAT).
enum VfatFSInfo {
    static let leadSignature: UInt32 = 0x4161_5252
    static let structSignature: UInt32 = 0x6141_7272
    static let trailSignature: UInt32 = 0xAA55_0000
    static let freeCountOffset = 488
    static let nextFreeOffset = 492

    /// Whether the sector holds all three signatures.
    static func isValid(_ s: [UInt8]) -> Bool {
        let b = LittleEndianBytes(s)
        return s.count >= 512 && b.u32(0) == leadSignature && b.u32(484) == structSignature && b.u32(508) == trailSignature
    }
}
