import GuestFSBlock
import GuestFSFilesystem

/// Big-endian field access over one jbd2 block that has already been read whole.
///
/// Every jbd2 structure is stored big-endian (journal.rst, "Layout": "all fields are written to
/// disk in big-endian order"). Field offsets are the decoders' own constants, or bounds-checked
/// before use, so an offset outside the block is our bug and traps.
struct BigEndianBytes {
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    func u8(_ offset: Int) -> UInt8 { bytes[offset] }

    func u16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: uint(offset, width: 2)) }

    func u32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: uint(offset, width: 4)) }

    func u64(_ offset: Int) -> UInt64 { uint(offset, width: 8) }

    mutating func setU32(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= bytes.count, "field at \(offset)+4 outside a \(bytes.count)-byte block")
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(i))) }
    }

    private func uint(_ offset: Int, width: Int) -> UInt64 {
        precondition(offset >= 0 && offset + width <= bytes.count, "field at \(offset)+\(width) outside a \(bytes.count)-byte block")
        var value: UInt64 = 0
        for i in 0..<width { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }
}
