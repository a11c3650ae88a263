import GuestFSBlock

/// One LVM2 metadata area: an `mda_header` sector followed by a ring buffer of metadata text.
///
/// Layout: lvm2 `lib/format_text/layout.h` (`struct mda_header`, `struct raw_locn`, `FMTT_MAGIC`,
/// `FMTT_VERSION`, `MDA_HEADER_SIZE`, `RAW_LOCN_IGNORED`); the reader follows `format-text.c`
/// (`_raw_read_mda_header`, `_read_vg`/`text_read_metadata`). Integers are little-endian.
///
/// ```
/// mda_header (512 bytes, at the area's offset):
///   0x00 checksum_xl  calc_crc over bytes 4 ..< 512
///   0x04 magic[16]    " LVM2 x[5A%r0N*>"
///   0x14 version      1
///   0x18 start        absolute byte offset of this header on the PV
///   0x20 size         size of the whole area, header included
///   0x28 raw_locns[]  {offset u64, size u64, checksum u32, flags u32}, ended by a zero entry;
///                     raw_locns[0] is the committed metadata
/// ```
///
/// The text of raw_locns[0] starts `offset` bytes into the area. LVM writes the ring
/// circularly: when `offset + size` passes the end of the area, the rest continues just after the
/// header (at `MDA_HEADER_SIZE`). `checksum` covers the text, both pieces in order.
package struct LVMMetadataArea: Sendable {
    /// `FMTT_MAGIC` ("\040\114\126\115\062\040\170\133\065\101\045\162\060\116\052\076").
    static let magic = Array(" LVM2 x[5A%r0N*>".utf8)
    /// `FMTT_VERSION`.
    static let version: UInt32 = 1
    /// `MDA_HEADER_SIZE`: the header sector; the ring starts after it.
    static let headerSize: UInt64 = 512
    /// `RAW_LOCN_IGNORED`: this copy of the metadata is to be ignored (lvm `--metadataignore`).
    static let rawLocnIgnored: UInt32 = 0x1
    /// The largest metadata text we read. lvm2 keeps a VG's text far below this (its own cap on
    /// a metadata area is in the low megabytes); the cap bounds what damaged sizes can cost.
    package static let maxTextSize: UInt64 = 16 << 20

    /// Where the area is on the PV.
    package let area: LVMDiskArea
    /// The committed metadata text (trailing NULs removed), or nil when the area holds none (a PV
    /// not yet in a VG) or its copy is marked ignored.
    package let text: [UInt8]?

    /// Reads the mda_header at `area` and the metadata text it points to.
    /// Throws `ImageError` for a bad header (magic, checksum, version, start), a location outside
    /// the ring, a text larger than the cap, or a text checksum mismatch.
    package static func read(from device: any BlockDevice, area: LVMDiskArea) throws -> LVMMetadataArea {
        func fail(_ offset: UInt64, _ structure: String, _ reason: String) -> ImageError {
            ImageError(path: device.displayName, offset: offset, structure: structure, reason: reason)
        }
        let (areaEnd, overflow) = area.offset.addingReportingOverflow(area.size)
        guard !overflow, areaEnd <= device.size, area.size > headerSize else {
            throw fail(area.offset, "LVM metadata area",
                       "area of \(area.size) bytes does not fit the device (\(device.size) bytes) or has no room past its header")
        }
        let raw = try device.readBytes(at: area.offset, count: Int(headerSize))
        let b = LittleEndianBytes(raw)
        let structure = "LVM mda_header"
        guard b.slice(0x04, 16) == magic else { throw fail(area.offset, structure, "bad magic") }
        let crc = LVMChecksum.compute(raw[4...])
        guard crc == b.u32(0x00) else {
            throw fail(area.offset, structure, "checksum mismatch (stored 0x\(String(b.u32(0), radix: 16)), computed 0x\(String(crc, radix: 16)))")
        }
        guard b.u32(0x14) == version else { throw fail(area.offset, structure, "unsupported version \(b.u32(0x14))") }
        guard b.u64(0x18) == area.offset else {
            throw fail(area.offset, structure, "header says it starts at \(b.u64(0x18)), the label says \(area.offset)")
        }
        let ringSize = b.u64(0x20)
        guard ringSize > headerSize, ringSize <= area.size else {
            throw fail(area.offset, structure, "area size \(ringSize) is outside \(headerSize + 1)...\(area.size)")
        }
        // raw_locns[0] at 0x28: offset, size, checksum, flags.
        let textOffset = b.u64(0x28), textSize = b.u64(0x30), textCRC = b.u32(0x38), flags = b.u32(0x3c)
        if textOffset == 0 || textSize == 0 || flags & rawLocnIgnored != 0 {
            return LVMMetadataArea(area: area, text: nil)
        }
        let locn = area.offset + 0x28
        let ring = ringSize - headerSize
        guard textOffset >= headerSize, textOffset < ringSize else {
            throw fail(locn, "LVM raw_locn", "metadata offset \(textOffset) is outside the ring \(headerSize)..<\(ringSize)")
        }
        guard textSize <= ring, textSize <= maxTextSize else {
            throw fail(locn, "LVM raw_locn", "metadata size \(textSize) exceeds the ring (\(ring) bytes) or the \(maxTextSize)-byte cap")
        }
        // Circular buffer: the part past the end of the area continues after the header.
        let firstLength = min(textSize, ringSize - textOffset)
        let wrapped = textSize - firstLength
        var text = try device.readBytes(at: area.offset + textOffset, count: Int(firstLength))
        if wrapped > 0 {
            text += try device.readBytes(at: area.offset + headerSize, count: Int(wrapped))
        }
        let computed = LVMChecksum.compute(text)
        guard computed == textCRC else {
            throw fail(area.offset + textOffset, "LVM metadata text",
                       "checksum mismatch (stored 0x\(String(textCRC, radix: 16)), computed 0x\(String(computed, radix: 16)))")
        }
        while text.last == 0 { text.removeLast() }
        return LVMMetadataArea(area: area, text: text)
    }
}
