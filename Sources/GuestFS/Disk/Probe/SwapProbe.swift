import GuestFSBlock

/// Linux swap areas ("swap").
///
/// Layout: Linux include/linux/swap.h, `union swap_header`: the signature "SWAPSPACE2" (v1) or
/// "SWAP-SPACE" (v0) in the last 10 bytes of the first page, and for v1 `info` at byte 1024:
/// version u32 (1), last_page u32, nr_badpages u32, sws_uuid[16] at 1036, sws_volume[16] at 1052,
/// padding[117] at 1068. Checks as libblkid superblocks/swap.c: pages of 4, 8, 16, 32 and 64 KiB
/// are tried, in that order; a TuxOnIce image (its magic at 0) is not swap; v1 needs version 1
/// (either byte order) and a non-zero last page; label and UUID are read only when padding words
/// 32 and 33 are zero (blkid's "garbage" check). v0 has neither. The device must hold 10 pages
/// of 4 KiB. (blkid's "swsuspend" prober, for hibernation images, is not ours: such a device is
/// not reported at all.)
enum SwapProbe {
    static let minimumSize: UInt64 = 10 * 4096
    static let v0 = [UInt8](ascii: "SWAP-SPACE")
    static let v1 = [UInt8](ascii: "SWAPSPACE2")
    static let tuxOnIce: [UInt8] = [0xED, 0xC3, 0x02, 0xE9, 0x98, 0x56, 0xE5, 0x0C]
    static let pageSizes: [UInt64] = [0x1000, 0x2000, 0x4000, 0x8000, 0x10000]

    static func probe(_ r: ProbeReader) -> ProbeResult {
        var found: [UInt8]?
        for page in pageSizes {
            if r.matches(page - 10, v0) { found = v0; break }
            if r.matches(page - 10, v1) { found = v1; break }
        }
        guard let magic = found else { return .noMatch }
        guard let start = r.bytes(0, tuxOnIce.count) else { return .noMatch }
        if start.bytes == tuxOnIce { return .noMatch }
        if magic == v0 { return .match() }
        // struct swap_header_v1_2: 4 + 4 + 4 + 16 + 16 + 117 * 4 + 4 bytes.
        guard let h = r.bytes(1024, 516) else { return .noMatch }
        let version = h.le32(0)
        guard version == 1 || version.byteSwapped == 1, h.le32(4) != 0 else { return .noMatch }
        guard h.le32(44 + 32 * 4) == 0, h.le32(44 + 33 * 4) == 0 else { return .match() }
        let label = h.u8(28) != 0 ? ProbeText.label(h.slice(28, 16)) : nil
        return .match(label: label, uuid: ProbeText.uuid(h.slice(12, 16)))
    }
}
