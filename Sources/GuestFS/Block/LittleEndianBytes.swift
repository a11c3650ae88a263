/// Little-endian field access over one on-disk structure that has already been read whole.
///
/// MBR and GPT store every integer little-endian (UEFI spec 2.10, §5.2 and §5.3: "all numeric
/// values are little endian"). Field offsets are the decoders' own constants, never numbers read
/// from disk, so an offset outside the buffer is our bug and traps.
package struct LittleEndianBytes {
    package let bytes: [UInt8]

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var count: Int { bytes.count }

    package func u8(_ offset: Int) -> UInt8 { bytes[offset] }

    package func u16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: uint(offset, width: 2)) }

    package func u32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: uint(offset, width: 4)) }

    package func u64(_ offset: Int) -> UInt64 { uint(offset, width: 8) }

    /// `count` bytes starting at `offset`, as a new array.
    package func slice(_ offset: Int, _ count: Int) -> [UInt8] { Array(bytes[offset ..< offset + count]) }

    /// Whether every byte in `[offset, offset+count)` is zero.
    package func isZero(_ offset: Int, _ count: Int) -> Bool { bytes[offset ..< offset + count].allSatisfy { $0 == 0 } }

    private func uint(_ offset: Int, width: Int) -> UInt64 {
        precondition(offset >= 0 && offset + width <= bytes.count, "field at \(offset)+\(width) outside a \(bytes.count)-byte structure")
        var value: UInt64 = 0
        for i in stride(from: width - 1, through: 0, by: -1) {
            value = value << 8 | UInt64(bytes[offset + i])
        }
        return value
    }

    /// Stores `value` little-endian at `offset` of `bytes` (a structure being written back).
    package static func put32(_ value: UInt32, into bytes: inout [UInt8], at offset: Int) {
        for i in 0 ..< 4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> UInt32(8 * i)) }
    }

    /// Stores `value` little-endian at `offset` of `bytes`.
    package static func put64(_ value: UInt64, into bytes: inout [UInt8], at offset: Int) {
        for i in 0 ..< 8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i)) }
    }

    /// Stores `value` little-endian at `offset` of `buffer` (a cached table being changed).
    package static func put32(_ value: UInt32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        for i in 0 ..< 4 { buffer[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    /// Appends `value` little-endian to `bytes`.
    package static func append32(_ value: UInt32, to bytes: inout [UInt8]) {
        for i in 0 ..< 4 { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(8 * i))) }
    }
}
