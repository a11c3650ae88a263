import GuestFSBlock

/// FAT12, FAT16 and FAT32 ("vfat").
///
/// Layout: Microsoft "FAT: General Overview of On-Disk Format" (fatgen103), the BPB: bytes per
/// sector u16 at 11, sectors per cluster u8 at 13, reserved sectors u16 at 14, FAT count u8 at 16,
/// root entries u16 at 17, total sectors u16 at 19 (else u32 at 32), media u8 at 21, FAT size u16
/// at 22 (FAT32: u32 at 36); FAT12/16 serial at 39 and label at 43; FAT32 root cluster u32 at 44,
/// FSInfo sector u16 at 48, serial at 67, label at 71. Directory entries are 32 bytes: name[11],
/// attributes at 11, first cluster high u16 at 20 and low u16 at 26.
///
/// Checks as libblkid 2.38 superblocks/vfat.c: the first of vfat_idinfo's magics found decides how
/// much the boot sector must prove (a bare jump byte or 55AA needs the boot signature and must not
/// be a JFS/HPFS pseudo-BPB); then the BPB sanity checks of `fat_valid_superblock`, computed, as
/// there, in 32-bit unsigned arithmetic that wraps (`&+`, `&-`, `&*` below mirror C's uint32_t,
/// so a garbage BPB gets blkid's answer and never traps). LABEL is the root directory's
/// volume-label entry only (FAT32's root directory followed through at most 99 clusters, as
/// blkid does): the boot sector's copy is what blkid calls LABEL_FATBOOT, not LABEL, so a volume
/// whose directory entry is gone has no label, as `blkid` and udev's by-label links see it. The
/// UUID is the serial as XXXX-XXXX (on FAT12/16 only with an extended boot signature 0x28/0x29).
enum FatProbe {
    static let fat12Max: UInt32 = 0xFF4
    static let fat16Max: UInt32 = 0xFFF4
    static let fat32Max: UInt32 = 0x0FFF_FFF6

    /// vfat_idinfo's magics: (bytes, offset in the boot sector).
    static let magics: [(magic: [UInt8], offset: Int)] = [
        ([UInt8](ascii: "MSWIN"), 0x52), ([UInt8](ascii: "FAT32   "), 0x52), ([UInt8](ascii: "MSDOS"), 0x36),
        ([UInt8](ascii: "FAT16   "), 0x36), ([UInt8](ascii: "FAT12   "), 0x36), ([UInt8](ascii: "FAT     "), 0x36),
        ([0xEB], 0), ([0xE9], 0), ([0x55, 0xAA], 0x1FE),
    ]

    struct Geometry {
        let sectorSize: UInt32, reserved: UInt32, fatSize: UInt32, clusterCount: UInt32
    }

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let bs = r.bytes(0, 512), let magic = magics.first(where: { bs.has($0.magic, at: $0.offset) }) else { return .noMatch }
        guard let g = validate(bs, weakMagic: magic.magic.count <= 2) else { return .noMatch }
        var label: [UInt8]?
        var serial: [UInt8]?
        if bs.le16(0x16) != 0 {
            // FAT12/16: the root directory follows the FATs.
            let rootStart = (g.reserved &+ g.fatSize) &* g.sectorSize
            label = searchLabel(r, at: UInt64(rootStart), entries: UInt32(bs.le16(0x11)))
            if bs.u8(0x26) == 0x28 || bs.u8(0x26) == 0x29 { serial = bs.slice(0x27, 4) }
        } else if bs.le32(0x24) != 0 {
            // FAT32: the root directory is a cluster chain.
            let clusterSectors = UInt32(bs.u8(0x0D))
            let clusterBytes = clusterSectors &* g.sectorSize
            let dataStart = g.reserved &+ g.fatSize
            let fatEntries = UInt32(truncatingIfNeeded: UInt64(bs.le32(0x24)) * UInt64(g.sectorSize) / 4)
            var next = bs.le32(0x2C)
            var loops = 100
            while next != 0 && next < fatEntries {
                loops -= 1
                if loops == 0 { break }
                let offset = UInt64(dataStart &+ (next &- 2) &* clusterSectors) * UInt64(g.sectorSize)
                if let found = searchLabel(r, at: offset, entries: clusterBytes / 32) {
                    label = found
                    break
                }
                // blkid reads a cluster's worth at the FAT entry and uses its first 4 bytes.
                let entryOffset = UInt64(g.reserved) * UInt64(g.sectorSize) + UInt64(next) * 4
                guard r.fits(entryOffset, Int(clusterBytes)), let entry = r.bytes(entryOffset, 4) else { break }
                next = entry.le32(0) & 0x0FFF_FFFF
            }
            serial = bs.slice(0x43, 4)
            // The FSInfo sector must carry its signatures, or be all zeros there.
            let fsinfoSector = UInt64(bs.le16(0x30))
            if fsinfoSector != 0 {
                guard let info = r.bytes(fsinfoSector * UInt64(g.sectorSize), 512) else { return .noMatch }
                let lead = info.slice(0, 4), middle = info.slice(484, 4)
                guard lead == [0x52, 0x52, 0x61, 0x41] || lead == [0x52, 0x52, 0x64, 0x41] || lead == [0, 0, 0, 0] else { return .noMatch }
                guard middle == [0x72, 0x72, 0x41, 0x61] || middle == [0, 0, 0, 0] else { return .noMatch }
            }
        }
        return .match(label: label.flatMap(ProbeText.label), uuid: serial.flatMap(ProbeText.serial4))
    }

    /// fat_valid_superblock (vfat.c).
    static func validate(_ bs: ProbeBytes, weakMagic: Bool) -> Geometry? {
        if weakMagic {
            guard bs.u8(0x1FE) == 0x55, bs.u8(0x1FF) == 0xAA else { return nil }
            if bs.has([UInt8](ascii: "JFS     "), at: 0x36) || bs.has([UInt8](ascii: "HPFS    "), at: 0x36) { return nil }
        }
        let fats = UInt32(bs.u8(0x10)), reserved = UInt32(bs.le16(0x0E)), media = bs.u8(0x15)
        let clusterSectors = UInt32(bs.u8(0x0D))
        guard fats != 0, reserved != 0, media >= 0xF8 || media == 0xF0, isPowerOfTwo(clusterSectors) else { return nil }
        let sectorSize = UInt32(bs.le16(0x0B))
        guard isPowerOfTwo(sectorSize), (512 ... 4096).contains(sectorSize) else { return nil }
        let dirEntries = UInt32(bs.le16(0x11))
        var sectors = UInt32(bs.le16(0x13))
        if sectors == 0 { sectors = bs.le32(0x20) }
        var fatLength = UInt32(bs.le16(0x16))
        if fatLength == 0 { fatLength = bs.le32(0x24) }
        let fatSize = fatLength &* fats
        let dirSectors = (dirEntries * 32 + (sectorSize - 1)) / sectorSize
        let clusters = (sectors &- (reserved &+ fatSize &+ dirSectors)) / clusterSectors
        let maxCount: UInt32
        if bs.le16(0x16) == 0 && bs.le32(0x24) != 0 {
            maxCount = fat32Max
        } else {
            maxCount = clusters > fat12Max ? fat16Max : fat12Max
        }
        guard clusters <= maxCount else { return nil }
        return Geometry(sectorSize: sectorSize, reserved: reserved, fatSize: fatSize, clusterCount: clusters)
    }

    static func isPowerOfTwo(_ n: UInt32) -> Bool { n != 0 && n & (n - 1) == 0 }

    /// search_fat_label: the first volume-label entry of a directory of `entries` entries at
    /// `offset`, stopping at the end-of-directory mark. As blkid, on a device that is not tiny the
    /// whole directory must lie inside it (blkid reads it in one piece); on a tiny one entries are
    /// read one by one, as far as they go. Either way only the entries up to the end mark are
    /// read, a sector at a time where the device allows.
    static func searchLabel(_ r: ProbeReader, at offset: UInt64, entries: UInt32) -> [UInt8]? {
        let total = UInt64(entries) * 32
        if !r.isTiny {
            guard total <= UInt64(ProbeReader.maxRead), r.fits(offset, Int(total)) else { return nil }
        }
        var chunk: ProbeBytes?, chunkStart: UInt64 = 0
        var done: UInt64 = 0
        while done < total {
            let (at, overflow) = offset.addingReportingOverflow(done)
            if overflow { return nil }
            if chunk == nil || at - chunkStart + 32 > UInt64(chunk?.count ?? 0) {
                chunk = r.bytes(at, Int(min(512, total - done))) ?? r.bytes(at, 32)
                chunkStart = at
            }
            guard let c = chunk else { return nil }
            let e = Int(at - chunkStart)
            let first = c.u8(e), attr = c.u8(e + 11)
            if first == 0 { return nil }
            let hasCluster = c.le16(e + 20) != 0 || c.le16(e + 26) != 0
            if first != 0xE5, !hasCluster, attr & 0x3F != 0x0F, attr & (0x08 | 0x10) == 0x08 {
                return c.slice(e, 11)
            }
            done += 32
        }
        return nil
    }
}
