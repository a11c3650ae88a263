import GuestFSBlock

/// The LVM2 physical-volume label: what makes a device a PV, and where its metadata lives.
///
/// Layouts: lvm2 `lib/label/label.h` (`struct label_header`, `LABEL_ID`, `LABEL_SCAN_SECTORS`) and
/// `lib/format_text/layout.h` (`struct pv_header`, `LVM2_LABEL`); `struct disk_locn` is in
/// `lib/format_text/format-text.h`. lvm2's `label.c` (`_find_lvm_header`) and `text_label.c`
/// (`_text_read`) are the readers this one follows. Every integer is little-endian (`_xl` fields
/// go through `xlate`).
///
/// ```
/// one of sectors 0-3:
///   0x00  id[8]        "LABELONE"
///   0x08  sector_xl    the sector this label is in
///   0x10  crc_xl       calc_crc over bytes 0x14 ..< 512 of the sector
///   0x14  offset_xl    offset of the pv_header from the label (32)
///   0x18  type[8]      "LVM2 001"
/// pv_header at offset_xl:
///   pv_uuid[32], device_size_xl (bytes),
///   disk_locn {offset, size} list of data areas, ended by a zero offset,
///   disk_locn list of metadata areas, ended by a zero offset
/// ```

/// A byte range of a PV, as `struct disk_locn` gives it (offset from the start of the PV).
package struct LVMDiskArea: Sendable, Equatable {
    package let offset: UInt64
    /// Bytes; 0 in a data area means "to the end of the device".
    package let size: UInt64
}

/// A decoded label_header + pv_header.
package struct LVMLabel: Sendable {
    /// `LABEL_ID`.
    static let labelID = Array("LABELONE".utf8)
    /// `LVM2_LABEL`: the labeller type of the text format.
    static let labelType = Array("LVM2 001".utf8)
    /// `LABEL_SIZE` (one sector) and `LABEL_SCAN_SECTORS` (label.h).
    static let sectorSize = 512
    static let scanSectors = 4
    /// Size of `struct label_header`; the pv_header cannot start before its end.
    static let labelHeaderSize = 32
    /// `ID_LEN` (lib/uuid/uuid.h): a UUID is 32 characters on disk, shown with dashes.
    static let idLength = 32

    /// The sector (0-3) the label was found in.
    package let sector: UInt64
    /// The PV UUID in LVM's dashed form (`lqVGff-C026-ECRQ-2uL2-raJt-L26e-U7U5NG`).
    package let pvUUID: String
    /// `device_size_xl`: the size of the device when the PV was made, in bytes.
    package let deviceSize: UInt64
    /// Where the extents live (normally one area starting at `pe_start`).
    package let dataAreas: [LVMDiskArea]
    /// Where the metadata areas (mda_header + text ring) live: none, one or two.
    package let metadataAreas: [LVMDiskArea]

    /// Reads the label of `device`. Returns nil when none of sectors 0-3 starts with "LABELONE"
    /// (not a PV); throws `ImageError` when a label is there but damaged (bad checksum, wrong
    /// sector, an unknown type, a pv_header that does not fit the sector).
    package static func read(from device: any BlockDevice) throws -> LVMLabel? {
        let sectors = min(UInt64(scanSectors), device.size / UInt64(sectorSize))
        guard sectors > 0 else { return nil }
        let bytes = try device.readBytes(at: 0, count: Int(sectors) * sectorSize)
        for sector in 0 ..< Int(sectors) {
            let start = sector * sectorSize
            let raw = Array(bytes[start ..< start + sectorSize])
            guard raw.starts(with: labelID) else { continue }
            return try decode(sector: raw, number: UInt64(sector), device: device)
        }
        return nil
    }

    /// Decodes one 512-byte sector that starts with "LABELONE".
    static func decode(sector raw: [UInt8], number: UInt64, device: any BlockDevice) throws -> LVMLabel {
        let offset = number * UInt64(sectorSize)
        func fail(_ reason: String) -> ImageError {
            ImageError(path: device.displayName, offset: offset, structure: "LVM label", reason: reason)
        }
        let b = LittleEndianBytes(raw)
        // label_header fields (label.h).
        let sectorXL = b.u64(0x08), crcXL = b.u32(0x10), offsetXL = b.u32(0x14)
        guard sectorXL == number else {
            throw fail("label in sector \(number) says it is in sector \(sectorXL)")
        }
        let crc = LVMChecksum.compute(raw[0x14 ..< sectorSize])
        guard crc == crcXL else {
            throw fail("checksum mismatch (stored 0x\(String(crcXL, radix: 16)), computed 0x\(String(crc, radix: 16)))")
        }
        guard b.slice(0x18, 8) == labelType else {
            throw fail("unknown label type \"\(String(decoding: b.slice(0x18, 8), as: UTF8.self))\" (expected LVM2 001)")
        }
        // pv_header: uuid, device size, and at least the two list terminators must fit the sector.
        let headerStart = Int(offsetXL)
        guard offsetXL >= UInt32(labelHeaderSize), headerStart + idLength + 8 + 2 * 16 <= sectorSize else {
            throw fail("pv_header offset \(offsetXL) does not leave room for a pv_header in the sector")
        }
        let uuidBytes = b.slice(headerStart, idLength)
        guard let uuid = formatUUID(uuidBytes) else {
            throw fail("PV UUID holds characters LVM never writes")
        }
        let deviceSize = b.u64(headerStart + idLength)
        var cursor = headerStart + idLength + 8
        /// Reads one zero-terminated disk_locn list; the sector's end bounds it.
        func readList(_ name: String) throws -> [LVMDiskArea] {
            var areas: [LVMDiskArea] = []
            while true {
                guard cursor + 16 <= sectorSize else { throw fail("\(name) list runs past the end of the label sector") }
                let area = LVMDiskArea(offset: b.u64(cursor), size: b.u64(cursor + 8))
                cursor += 16
                if area.offset == 0 { return areas }
                areas.append(area)
            }
        }
        let data = try readList("data area")
        let metadata = try readList("metadata area")
        return LVMLabel(sector: number, pvUUID: uuid, deviceSize: deviceSize, dataAreas: data, metadataAreas: metadata)
    }

    /// The 32 UUID characters as LVM prints them (6-4-4-4-4-4-6, lib/uuid/uuid.c `id_write_format`),
    /// or nil when they are not all of LVM's alphabet (`[0-9A-Za-z]`, `_c` in uuid.c).
    static func formatUUID(_ bytes: [UInt8]) -> String? {
        guard bytes.count == idLength, bytes.allSatisfy({ isAlnum($0) }) else { return nil }
        var out = "", index = 0
        for (group, length) in [6, 4, 4, 4, 4, 4, 6].enumerated() {
            if group > 0 { out += "-" }
            out += String(decoding: bytes[index ..< index + length], as: UTF8.self)
            index += length
        }
        return out
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (0x30 ... 0x39).contains(c) || (0x41 ... 0x5a).contains(c) || (0x61 ... 0x7a).contains(c)
    }
}

extension LVMLabel {
    /// A UUID without its dashes, for comparing the label's form with the metadata's.
    static func undashed(_ uuid: String) -> String { uuid.filter { $0 != "-" } }
}
