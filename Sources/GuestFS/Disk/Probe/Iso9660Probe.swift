import GuestFSBlock

/// ISO 9660, with Joliet, and High Sierra ("iso9660").
///
/// Layout: ECMA-119 §8: volume descriptors are 2048-byte sectors from 32 KiB, type u8 at 0,
/// "CD001" at 1; the primary one has the volume identifier (32 a-characters) at 40 and the
/// creation and modification dates (17 bytes each, "YYYYMMDDHHMMSSCC" digits then a zone
/// offset) at 813 and 830; a supplementary one (type 2) whose escape sequences at 88 are "%/@",
/// "%/C" or "%/E" is Joliet (identifiers in UCS-2 big-endian). Type 255 ends the set. High Sierra
/// discs have "CDROM" at 32 KiB + 9 and the volume identifier at 32 KiB + 48.
/// Checks as libblkid superblocks/iso9660.c: the UUID is the modification date, or the creation
/// date when that one is unset (all '0' digits and a zero offset), as "YYYY-MM-DD-HH-MM-SS-CC";
/// the label is the primary descriptor's, unless a Joliet descriptor (among the 16 after it)
/// holds a different name, which then wins.
enum Iso9660Probe {
    static let superblockOffset: UInt64 = 0x8000
    static let sectorSize: UInt64 = 0x800
    static let maxDescriptors = 16
    /// sizeof(struct iso_volume_descriptor) in iso9660.c: through the modification date.
    static let descriptorSize = 847
    static let jolietEscapes: [[UInt8]] = [[0x25, 0x2F, 0x40], [0x25, 0x2F, 0x43], [0x25, 0x2F, 0x45]]

    static func probe(_ r: ProbeReader) -> ProbeResult {
        if r.matches(superblockOffset + 9, [UInt8](ascii: "CDROM")) && !r.matches(superblockOffset + 1, [UInt8](ascii: "CD001")) {
            guard let hs = r.bytes(superblockOffset, 80) else { return .noMatch }
            return .match(label: ProbeText.label(hs.slice(48, 32)))
        }
        guard let pvd = r.bytes(superblockOffset, descriptorSize), pvd.has([UInt8](ascii: "CD001"), at: 1) else { return .noMatch }
        let volumeID = pvd.slice(40, 32)
        var uuid: String?
        switch dateUUID(pvd.slice(830, 17)) {
        case .unset: if case .set(let created) = dateUUID(pvd.slice(813, 17)) { uuid = created }
        case .set(let modified): uuid = modified
        case .empty: break
        }
        var offset = superblockOffset + sectorSize
        for _ in 0 ..< maxDescriptors {
            guard let vd = r.bytes(offset, descriptorSize), vd.u8(0) != 0xFF else { break }
            offset += sectorSize
            guard vd.u8(0) == 2, jolietEscapes.contains(vd.slice(88, 3)) else { continue }
            let joliet = vd.slice(40, 32)
            if equalsUTF16BE(ascii: volumeID, joliet) { break }
            return .match(label: ProbeText.label(joliet, encoding: .utf16BE), uuid: uuid)
        }
        return .match(label: ProbeText.label(volumeID), uuid: uuid)
    }

    enum DateUUID { case set(String), unset, empty }

    /// probe_iso9660_set_uuid: a date's 16 digits as the UUID. "Unset" dates (all '0', offset 0)
    /// leave the next date to try; all-NUL digits are skipped but end the search, as in blkid.
    static func dateUUID(_ date: [UInt8]) -> DateUUID {
        let digits = Array(date.prefix(16))
        if digits.allSatisfy({ $0 == 0x30 }) && date[16] == 0 { return .unset }
        if digits.allSatisfy({ $0 == 0 }) { return .empty }
        var text: [UInt8] = []
        for (i, c) in digits.enumerated() {
            if [4, 6, 8, 10, 12, 14].contains(i) { text.append(0x2D) }
            text.append(c)
        }
        return .set(String(decoding: text.prefix(while: { $0 != 0 }), as: UTF8.self))
    }

    /// ascii_eq_utf16be: whether the Joliet name's 16 characters are the primary name's first 16.
    static func equalsUTF16BE(ascii: [UInt8], _ utf16: [UInt8]) -> Bool {
        for u in stride(from: 0, to: utf16.count, by: 2) where utf16[u] != 0 || ascii[u / 2] != utf16[u + 1] {
            return false
        }
        return true
    }
}
