import Foundation
import TestSupport

/// Byte-level edits of a PV inside an image file, so tests can show the damage they inflict.
///
/// Offsets follow lvm2's layout.h and label.h (see `LVMLabel.swift`, `LVMMetadataArea.swift`);
/// the checksum here is lvm2's nibble-table `calc_crc` (lib/misc/crc.c), written independently
/// of the byte-table one under test so that each checks the other.
struct LVMDamage {
    let image: String
    /// Where the PV starts in the image.
    let pvOffset: UInt64
    /// `pvcreate` puts the first metadata area at 4 KiB (one page).
    static let mdaOffset: UInt64 = 4096

    static func calcCRC(_ bytes: some Sequence<UInt8>, initial: UInt32 = 0xf597_a6cf) -> UInt32 {
        let nibbles: [UInt32] = [0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
                                 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c]
        var crc = initial
        for byte in bytes {
            crc ^= UInt32(byte)
            crc = (crc >> 4) ^ nibbles[Int(crc & 0xf)]
            crc = (crc >> 4) ^ nibbles[Int(crc & 0xf)]
        }
        return crc
    }

    func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: image))
        defer { try? handle.close() }
        try handle.seek(toOffset: pvOffset + offset)
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    func patch(at offset: UInt64, _ bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: image))
        defer { try? handle.close() }
        try handle.seek(toOffset: pvOffset + offset)
        try handle.write(contentsOf: Data(bytes))
    }

    static func le(_ value: UInt64, _ width: Int) -> [UInt8] { (0 ..< width).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    static func le(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
        (0 ..< width).reversed().reduce(0) { $0 << 8 | UInt64(b[at + $1]) }
    }

    /// The mda_header sector, checked to be one.
    func mdaHeader() throws -> [UInt8] {
        let header = try bytes(at: Self.mdaOffset, count: 512)
        precondition(Array(header[4 ..< 20]) == Array(" LVM2 x[5A%r0N*>".utf8), "no mda_header at 4 KiB")
        return header
    }

    /// raw_locns[0]: (offset, size, checksum, flags).
    func rawLocation() throws -> (offset: UInt64, size: UInt64, checksum: UInt32, flags: UInt32) {
        let h = try mdaHeader()
        return (Self.le(h, 0x28, 8), Self.le(h, 0x30, 8), UInt32(Self.le(h, 0x38, 4)), UInt32(Self.le(h, 0x3c, 4)))
    }

    /// Rewrites header fields at `offset` within the mda_header, then recomputes its checksum
    /// (unless `fixChecksum` is false).
    func patchMDAHeader(at offset: Int, _ bytes: [UInt8], fixChecksum: Bool = true) throws {
        var h = try mdaHeader()
        h.replaceSubrange(offset ..< offset + bytes.count, with: bytes)
        if fixChecksum { h.replaceSubrange(0 ..< 4, with: Self.le(UInt64(Self.calcCRC(h[4...])), 4)) }
        try patch(at: Self.mdaOffset, h)
    }

    /// The committed metadata text (not wrapped).
    func metadataText() throws -> String {
        let locn = try rawLocation()
        let raw = try bytes(at: Self.mdaOffset + locn.offset, count: Int(locn.size))
        return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Replaces the committed metadata with `transform(text)`, written where the old text was,
    /// with raw_locn size and checksum updated to match, as lvm2 would have written it.
    func rewriteMetadata(_ transform: (String) -> String) throws {
        let locn = try rawLocation()
        let text = Array(transform(try metadataText()).utf8) + [0]
        try writeMetadata(text, at: locn.offset)
    }

    /// Writes `text` into the ring at `offset` and points raw_locns[0] at it, checksum and all.
    func writeMetadata(_ text: [UInt8], at offset: UInt64, declaredSize: UInt64? = nil) throws {
        try patch(at: Self.mdaOffset + offset, text)
        try patchMDAHeader(at: 0x28, Self.le(offset, 8) + Self.le(declaredSize ?? UInt64(text.count), 8)
                           + Self.le(UInt64(Self.calcCRC(text)), 4) + Self.le(0, 4))
    }
}
