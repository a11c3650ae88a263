import GuestFSBlock
import GuestFSFilesystem

/// Field access over one ISO 9660 structure that has already been read whole (a volume
/// descriptor, a directory record, a System Use entry, a boot catalog entry).
///
/// ECMA-119 (ISO 9660) stores numbers in the forms of its section 7: 7.1.1 (8-bit), 7.2.1/7.2.2
/// (16-bit little/big endian), 7.2.3 (16-bit both-byte orders: LE then BE), 7.3.1/7.3.2 (32-bit
/// little/big endian) and 7.3.3 (32-bit both-byte orders, 8 bytes). Both-byte-order fields are
/// read from their little-endian half, as the Linux kernel's isonum_723/isonum_733 do; a mismatch
/// between the halves is tolerated (mastering tools have been known to get the big-endian half
/// wrong). Offsets are the decoders' own constants or have been checked against `count` by the
/// caller; `u8`/`u16`/... return nil instead of trapping when a field would lie outside.
struct ISO9660Bytes {
    let bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    var count: Int { bytes.count }

    /// Whether `[offset, offset+width)` lies inside the structure.
    func contains(_ offset: Int, _ width: Int) -> Bool {
        offset >= 0 && width >= 0 && offset <= count && width <= count - offset
    }

    /// 7.1.1: an 8-bit unsigned number.
    func u8(_ offset: Int) -> UInt8? {
        guard contains(offset, 1) else { return nil }
        return bytes[bytes.startIndex + offset]
    }

    /// 7.2.1: a 16-bit number, little endian.
    func u16le(_ offset: Int) -> UInt16? { uintLE(offset, width: 2).map { UInt16(truncatingIfNeeded: $0) } }

    /// 7.3.1: a 32-bit number, little endian.
    func u32le(_ offset: Int) -> UInt32? { uintLE(offset, width: 4).map { UInt32(truncatingIfNeeded: $0) } }

    /// 7.2.3: a 16-bit number recorded in both byte orders (4 bytes); the LE half is used.
    func u16both(_ offset: Int) -> UInt16? {
        guard contains(offset, 4) else { return nil }
        return u16le(offset)
    }

    /// 7.3.3: a 32-bit number recorded in both byte orders (8 bytes); the LE half is used.
    func u32both(_ offset: Int) -> UInt32? {
        guard contains(offset, 8) else { return nil }
        return u32le(offset)
    }

    /// `width` bytes at `offset`, or nil when they do not fit.
    func slice(_ offset: Int, _ width: Int) -> ArraySlice<UInt8>? {
        guard contains(offset, width) else { return nil }
        let start = bytes.startIndex + offset
        return bytes[start ..< start + width]
    }

    /// Everything from `offset` to the end (empty when `offset` is at or past the end).
    func tail(from offset: Int) -> ArraySlice<UInt8> {
        guard offset >= 0, offset < count else { return [] }
        return bytes[(bytes.startIndex + offset)...]
    }

    /// An a-/d-character field (ECMA-119 7.4) with its padding spaces (and NULs) trimmed.
    func trimmedText(_ offset: Int, _ width: Int) -> String {
        guard let field = slice(offset, width) else { return "" }
        var end = field.endIndex
        while end > field.startIndex, field[end - 1] == 0x20 || field[end - 1] == 0 { end -= 1 }
        return String(decoding: field[field.startIndex ..< end], as: UTF8.self)
    }

    private func uintLE(_ offset: Int, width: Int) -> UInt64? {
        guard contains(offset, width) else { return nil }
        var value: UInt64 = 0
        let base = bytes.startIndex + offset
        for i in stride(from: width - 1, through: 0, by: -1) { value = value << 8 | UInt64(bytes[base + i]) }
        return value
    }
}

/// Checked arithmetic on values read from an image: the overflow becomes a typed error naming
/// the structure, never a trap (STYLE.md rule 14).
enum ISO9660Math {
    static func multiply(_ a: UInt64, _ b: UInt64, _ error: @autoclosure () -> ImageError) throws -> UInt64 {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        if overflow { throw error() }
        return value
    }

    static func add(_ a: UInt64, _ b: UInt64, _ error: @autoclosure () -> ImageError) throws -> UInt64 {
        let (value, overflow) = a.addingReportingOverflow(b)
        if overflow { throw error() }
        return value
    }
}
