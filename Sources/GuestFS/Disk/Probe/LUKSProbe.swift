import GuestFSBlock

/// LUKS1 and LUKS2 containers ("crypto_LUKS").
///
/// Layout: the LUKS1 on-disk format specification ("PHDR": magic "LUKS\xBA\xBE", version u16 BE
/// at 6, UUID text at 168, 40 bytes) and the LUKS2 on-disk format, binary header (same magic and
/// version, label at 24 (48 bytes), UUID at 168, hdr_offset u64 BE at 256; the secondary header
/// has the magic "SKUL\xBA\xBE"). Checks as libblkid 2.38 superblocks/luks.c: a primary header at
/// 0, else a secondary header at one of the offsets cryptsetup may put it, each known by its
/// magic alone (later libblkid also wants hdr_offset to name the header's own offset). The label
/// is LUKS2's only; a version other than 1 or 2 still matches, with neither.
enum LUKSProbe {
    static let primaryMagic: [UInt8] = [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]
    static let secondaryMagic: [UInt8] = [0x53, 0x4B, 0x55, 0x4C, 0xBA, 0xBE]
    /// LUKS2_HDR2_OFFSETS (luks.c; cryptsetup lib/luks2/luks2.h): 16 KiB to 4 MiB.
    static let secondaryOffsets: [UInt64] = [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000]
    static let headerSize = 512

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let primary = r.bytes(0, headerSize) else { return .noMatch }
        if primary.has(primaryMagic, at: 0) { return attributes(primary) }
        for offset in secondaryOffsets {
            guard let header = r.bytes(offset, headerSize) else { return .noMatch }
            if header.has(secondaryMagic, at: 0) { return attributes(header) }
        }
        return .noMatch
    }

    static func attributes(_ h: ProbeBytes) -> ProbeResult {
        switch h.be16(6) {
        case 1: return .match(uuid: ProbeText.uuidString(h.slice(168, 40)))
        case 2: return .match(label: ProbeText.label(h.slice(24, 48)), uuid: ProbeText.uuidString(h.slice(168, 40)))
        default: return .match()
        }
    }
}
