import GuestFSBlock

/// LVM2 physical volumes ("LVM2_member").
///
/// Layout: lvm2 lib/format_text/layout.h. A 512-byte label in one of the first four sectors:
/// `label_header` ("LABELONE" at 0, sector number u64 at 8, crc u32 at 16 over bytes 20..<512,
/// contents offset u32 at 20, type "LVM2 001" at 24), then the `pv_header` whose first field is
/// the 32-character PV UUID (at 32). Checks as libblkid superblocks/lvm.c: the type string is
/// looked for at the four places of `lvm2_idinfo`'s magics in that order; for the first found, the
/// label is the sector it belongs to or the one after it, and must name its own sector and carry
/// a good checksum.
enum LVMProbe {
    /// (byte offset of the 1 KiB block, offset of "LVM2 001" in it): lvm2_idinfo's magics.
    static let magicPlaces: [(block: UInt64, offset: UInt64)] = [(0, 0x218), (0, 0x018), (1024, 0x018), (1024, 0x218)]
    static let labelOne = [UInt8](ascii: "LABELONE")
    static let typeName = [UInt8](ascii: "LVM2 001")
    static let labelSize = 512

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let place = magicPlaces.first(where: { r.matches($0.block + $0.offset, typeName) }) else { return .noMatch }
        // probe_lvm2 reads 512 + sizeof(struct lvm2_pv_label_header) bytes from the block.
        guard let buf = r.bytes(place.block, labelSize + 64) else { return .failed }
        var sector = place.block / 512
        if !buf.has(labelOne, at: 0) {
            guard buf.has(labelOne, at: 512) else { return .noMatch }
            sector += 1
        }
        // The checksum covers the label's whole sector, which may run past the buffer read above.
        guard let label = r.bytes(sector * 512, labelSize), label.le64(8) == sector else { return .noMatch }
        guard LVMChecksum.compute(label.slice(20, labelSize - 20)) == label.le32(16) else { return .noMatch }
        return .match(uuid: uuid(label.slice(32, 32)))
    }

    /// format_lvm_uuid: the 32 raw characters in groups of 6-4-4-4-4-4-6 (lvm2 lib/uuid/uuid.c
    /// `id_write_format`); nil when the bytes are all zero (`blkid_probe_sprintf_uuid`).
    static func uuid(_ raw: [UInt8]) -> String? {
        guard raw.count == 32, !raw.allSatisfy({ $0 == 0 }) else { return nil }
        var out: [UInt8] = []
        for (i, c) in raw.enumerated() {
            if [6, 10, 14, 18, 22, 26].contains(i) { out.append(0x2D) }
            out.append(c)
        }
        return String(decoding: out.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}
