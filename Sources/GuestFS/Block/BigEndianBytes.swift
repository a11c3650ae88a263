/// Big-endian field access over one on-disk structure that has already been read whole.
///
/// VHD stores every integer big-endian (Microsoft "Virtual Hard Disk Image Format
/// Specification" 1.0, "Hard Disk Footer Format": "all values are stored in network byte
/// order"). Field offsets are the decoders' own constants, never numbers read from disk, so an
/// offset outside the buffer is our bug and traps.
package struct BigEndianBytes {
    package let bytes: [UInt8]

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var count: Int { bytes.count }

    package func u8(_ offset: Int) -> UInt8 { bytes[offset] }

    package func u16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: uint(offset, width: 2)) }

    package func u32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: uint(offset, width: 4)) }

    package func u64(_ offset: Int) -> UInt64 { uint(offset, width: 8) }

    /// `count` bytes starting at `offset`, as a new array.
    package func slice(_ offset: Int, _ count: Int) -> [UInt8] { Array(bytes[offset ..< offset + count]) }

    private func uint(_ offset: Int, width: Int) -> UInt64 {
        precondition(offset >= 0 && offset + width <= bytes.count, "field at \(offset)+\(width) outside a \(bytes.count)-byte structure")
        var value: UInt64 = 0
        for i in 0 ..< width { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }

    /// Stores `value` big-endian at `offset` of `bytes` (a structure being written back).
    package static func put32(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        put(UInt64(value), width: 4, into: &bytes, at: offset)
    }

    package static func put16(_ value: UInt16, into bytes: inout [UInt8], at offset: Int) {
        put(UInt64(value), width: 2, into: &bytes, at: offset)
    }

    package static func put64(_ value: UInt64, into bytes: inout [UInt8], at offset: Int) {
        put(value, width: 8, into: &bytes, at: offset)
    }

    private static func put(_ value: UInt64, width: Int, into bytes: inout [UInt8], at offset: Int) {
        for i in 0 ..< width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * (width - 1 - i))) }
    }
}
