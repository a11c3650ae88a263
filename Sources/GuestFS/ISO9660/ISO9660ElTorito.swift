import GuestFSBlock
import GuestFSFilesystem

/// The El Torito boot catalog ("El Torito" Bootable CD-ROM Format Specification 1.0, Phoenix/IBM
/// 1995, section 2): a Validation Entry, the Initial/Default Entry, then Section Headers each
/// followed by their Section Entries (and Extension Entries), 32 bytes each.
package struct ElToritoBootEntry: Sendable, Equatable {
    /// Platform ID (2.1 and 2.3): 0 x86, 1 PowerPC, 2 Mac, 0xEF UEFI.
    package let platform: UInt8
    /// Boot indicator 0x88 (2.2, 2.4).
    package let bootable: Bool
    package enum Emulation: UInt8, Sendable, Equatable {
        case noEmulation = 0, floppy1_2M = 1, floppy1_44M = 2, floppy2_88M = 3, hardDisk = 4
    }
    /// Boot media type (low 4 bits of byte 1); nil for a value the specification does not define.
    package let emulation: Emulation?
    /// Load segment (0 means the traditional 0x7C0).
    package let loadSegment: UInt16
    /// System type (the partition type byte of a hard-disk image).
    package let systemType: UInt8
    /// Sector count: virtual 512-byte sectors loaded at boot.
    package let sectorCount: UInt16
    /// Load RBA: the image's first 2048-byte sector.
    package let loadRBA: UInt32
    /// Which entry this is: 0 the Initial/Default Entry, then section entries in order.
    package let index: Int

    /// A short name for the platform, as xorriso's report_el_torito names them.
    package var platformName: String {
        switch platform {
        case 0: return "BIOS"
        case 1: return "PPC"
        case 2: return "Mac"
        case 0xEF: return "UEFI"
        default: return "0x" + String(platform, radix: 16)
        }
    }
}

enum ElToritoCatalog {
    /// Entries are read from at most this many catalog sectors (64 entries each).
    static let maxSectors = 16
    /// Validation Entry key bytes (2.1, offsets 0x1E and 0x1F).
    static let key: [UInt8] = [0x55, 0xAA]

    /// Reads the catalog at 2048-byte sector `sector`. Throws when the Validation Entry is wrong.
    static func read(from device: any BlockDevice, sector: UInt32) throws -> [ElToritoBootEntry] {
        let start = UInt64(sector) * 2048
        func bad(_ reason: String) -> ImageError {
            ImageError(path: device.displayName, offset: start, structure: "El Torito boot catalog", reason: reason, errno: .ioError)
        }
        guard start < device.size, device.size - start >= 64 else { throw bad("catalog lies past the end of the device") }
        let length = Int(min(UInt64(maxSectors * 2048), device.size - start)) / 32 * 32
        let bytes = try device.readBytes(at: start, count: length)
        // 2.1: header ID 1, key 55 AA, and the sixteen 16-bit words summing to zero.
        guard bytes[0] == 1, bytes[30] == key[0], bytes[31] == key[1] else { throw bad("no validation entry (header 1, key 55 AA)") }
        var sum: UInt16 = 0
        for i in stride(from: 0, to: 32, by: 2) { sum = sum &+ (UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
        guard sum == 0 else { throw bad("validation entry checksum does not add up to zero") }
        var platform = bytes[1]
        var entries = [entry(bytes[32 ..< 64], platform: platform, index: 0)]
        // 2.3/2.4: section headers (0x90, or 0x91 for the last) each followed by N entries; an
        // entry whose media byte has bit 5 set is followed by extension entries (0x44, 2.5).
        var pos = 64
        var finalSeen = false
        while !finalSeen, pos + 32 <= bytes.count {
            let header = bytes[pos]
            guard header == 0x90 || header == 0x91 else { break }
            finalSeen = header == 0x91
            platform = bytes[pos + 1]
            var remaining = Int(bytes[pos + 2]) | Int(bytes[pos + 3]) << 8
            pos += 32
            while remaining > 0, pos + 32 <= bytes.count {
                let indicator = bytes[pos]
                guard indicator == 0x88 || indicator == 0x00 else { break }
                entries.append(entry(bytes[pos ..< pos + 32], platform: platform, index: entries.count))
                var extended = bytes[pos + 1] & 0x20 != 0
                pos += 32
                remaining -= 1
                while extended, pos + 32 <= bytes.count, bytes[pos] == 0x44 {
                    extended = bytes[pos + 1] & 0x20 != 0
                    pos += 32
                }
            }
        }
        return entries
    }

    /// One Initial/Default (2.2) or Section Entry (2.4).
    static func entry(_ e: ArraySlice<UInt8>, platform: UInt8, index: Int) -> ElToritoBootEntry {
        let b = ISO9660Bytes(e)
        return ElToritoBootEntry(platform: platform, bootable: b.u8(0) == 0x88,
                                 emulation: ElToritoBootEntry.Emulation(rawValue: (b.u8(1) ?? 0) & 0x0F),
                                 loadSegment: b.u16le(2) ?? 0, systemType: b.u8(4) ?? 0,
                                 sectorCount: b.u16le(6) ?? 0, loadRBA: b.u32le(8) ?? 0, index: index)
    }
}
