import GuestFSBlock
import GuestFSFilesystem

/// One directory record (ECMA-119 9.1): the fixed 33 bytes, the file identifier, a padding byte
/// when the identifier's length is even, then the System Use area (where SUSP/Rock Ridge live).
struct ISO9660DirectoryRecord: Sendable {
    /// 9.1: the fixed part is 33 bytes; the root record in a volume descriptor is 34 (8.4.18).
    static let fixedLength = 33
    static let rootRecordLength = 34

    /// File flags (9.1.6).
    struct Flags: OptionSet, Sendable {
        let rawValue: UInt8
        static let existence = Flags(rawValue: 0x01)   // "hidden"
        static let directory = Flags(rawValue: 0x02)
        static let associated = Flags(rawValue: 0x04)
        static let record = Flags(rawValue: 0x08)
        static let protection = Flags(rawValue: 0x10)
        /// Not the final record of the file: another section follows (multi-extent, ISO 9660 level 3).
        static let multiExtent = Flags(rawValue: 0x80)
    }

    /// Byte offset of the record on the device: the node id of a file (ISO9660NodeID.swift).
    let offset: UInt64
    /// Length of the record (9.1.1).
    let length: Int
    /// Extended attribute record length in logical blocks (9.1.2); data starts after it.
    let extendedAttributeLength: UInt8
    /// Location of the extent in logical blocks (9.1.3).
    let extent: UInt32
    /// Data length in bytes (9.1.4).
    let dataLength: UInt32
    /// Recording date (9.1.5).
    let date: Timestamp
    let flags: Flags
    /// File unit size and interleave gap (9.1.7, 9.1.8): non-zero means an interleaved file.
    let fileUnitSize: UInt8
    let interleaveGap: UInt8
    /// File identifier bytes (9.1.11), as recorded.
    let identifier: [UInt8]
    /// The System Use area (9.1.13): everything after the identifier and its padding byte.
    let systemUse: ArraySlice<UInt8>

    var isDirectory: Bool { flags.contains(.directory) }
    /// "." (a single 0x00 byte, 6.8.2.2) and ".." (a single 0x01 byte).
    var isSelf: Bool { identifier == [0] }
    var isParent: Bool { identifier == [1] }
    var isInterleaved: Bool { fileUnitSize != 0 || interleaveGap != 0 }

    /// Decodes the record at the start of `bytes` (which holds at least the whole record); `offset`
    /// is where it lies on the device. Throws when the lengths contradict each other.
    init(_ bytes: ArraySlice<UInt8>, offset: UInt64, device: String) throws {
        let b = ISO9660Bytes(bytes)
        func bad(_ reason: String) -> ImageError {
            ImageError(path: device, offset: offset, structure: "ISO 9660 directory record", reason: reason, errno: .ioError)
        }
        guard let length8 = b.u8(0) else { throw bad("record is empty") }
        let length = Int(length8)
        guard length >= Self.fixedLength + 1 else { throw bad("record length \(length) is below the minimum of 34") }
        guard length <= b.count else { throw bad("record length \(length) runs past its sector") }
        guard let xa = b.u8(1), let extent = b.u32both(2), let dataLength = b.u32both(10),
              let dateField = b.slice(18, 7), let flags = b.u8(25), let unit = b.u8(26), let gap = b.u8(27),
              let nameLength8 = b.u8(32) else { throw bad("record is truncated") }
        let nameLength = Int(nameLength8)
        guard nameLength >= 1, Self.fixedLength + nameLength <= length else {
            throw bad("identifier length \(nameLength) does not fit a record of \(length) bytes")
        }
        self.offset = offset
        self.length = length
        self.extendedAttributeLength = xa
        self.extent = extent
        self.dataLength = dataLength
        self.date = ISO9660Date.short(dateField) ?? Timestamp(seconds: 0, nanoseconds: 0)
        self.flags = Flags(rawValue: flags)
        self.fileUnitSize = unit
        self.interleaveGap = gap
        self.identifier = Array(b.slice(Self.fixedLength, nameLength) ?? [])
        // 9.1.12: a padding byte follows an identifier of even length.
        let systemUseStart = Self.fixedLength + nameLength + (nameLength % 2 == 0 ? 1 : 0)
        self.systemUse = systemUseStart < length ? (b.slice(systemUseStart, length - systemUseStart) ?? []) : []
    }

    /// The byte offset of the first data byte: (extent + extended attribute length) × block size.
    func dataOffset(blockSize: UInt32, device: String) throws -> UInt64 {
        let block = UInt64(extent) + UInt64(extendedAttributeLength)
        return try ISO9660Math.multiply(block, UInt64(blockSize),
                                        ImageError(path: device, offset: offset, structure: "ISO 9660 directory record",
                                                   reason: "extent \(extent) overflows a byte offset", errno: .ioError))
    }
}
