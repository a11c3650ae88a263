import GuestFSBlock
import GuestFSFilesystem

/// Big-endian field access over one XFS on-disk structure that has already been read whole.
///
/// Every XFS integer is big-endian ("XFS Algorithms & Data Structures", §3 "Common XFS Types";
/// xfs_format.h declares them `__be16/__be32/__be64`), except the CRC field of v5 metadata,
/// which is little-endian (see XFSChecksum). Unlike the MBR decoder's fixed offsets, many XFS
/// offsets come from the image (directory entry offsets, attribute name offsets, fork offsets),
/// so every access is checked and an access outside the buffer throws instead of trapping.
struct XFSBytes {
    let bytes: [UInt8]
    /// What the buffer holds and where it came from, for the error: "inode 133", "AGF 2", …
    let structure: String
    /// Byte offset of the buffer on the device, for the error.
    let deviceOffset: UInt64?

    init(_ bytes: [UInt8], structure: String, deviceOffset: UInt64? = nil) {
        self.bytes = bytes
        self.structure = structure
        self.deviceOffset = deviceOffset
    }

    var count: Int { bytes.count }

    func u8(_ offset: Int) throws -> UInt8 { UInt8(truncatingIfNeeded: try uint(offset, width: 1)) }
    func u16(_ offset: Int) throws -> UInt16 { UInt16(truncatingIfNeeded: try uint(offset, width: 2)) }
    func u32(_ offset: Int) throws -> UInt32 { UInt32(truncatingIfNeeded: try uint(offset, width: 4)) }
    func u64(_ offset: Int) throws -> UInt64 { try uint(offset, width: 8) }

    /// `count` bytes starting at `offset`.
    func slice(_ offset: Int, _ count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else {
            throw outside(offset, count)
        }
        return Array(bytes[offset ..< offset + count])
    }

    /// The error for a field at `offset`+`width` that the buffer does not hold.
    func outside(_ offset: Int, _ width: Int) -> ImageError {
        ImageError(offset: deviceOffset, structure: structure,
                   reason: "field at byte \(offset) (+\(width)) lies outside the \(bytes.count)-byte structure",
                   errno: .ioError)
    }

    /// A structure-specific damage error carrying this buffer's name and offset.
    func damaged(_ reason: String) -> ImageError {
        ImageError(offset: deviceOffset, structure: structure, reason: reason, errno: .ioError)
    }

    private func uint(_ offset: Int, width: Int) throws -> UInt64 {
        guard offset >= 0, offset <= bytes.count, width <= bytes.count - offset else { throw outside(offset, width) }
        var value: UInt64 = 0
        for i in 0 ..< width { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }
}
