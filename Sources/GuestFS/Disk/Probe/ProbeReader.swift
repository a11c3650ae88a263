import GuestFSBlock

/// The probers' only way to the device: reads that answer nil instead of throwing.
///
/// libblkid's `blkid_probe_get_buffer` returns NULL for a range past the end of the device or a
/// failing read, and a prober then simply does not match; this type gives our probers the same
/// contract. Every read is bounded by the device size and by `maxRead`, so no number read from an
/// image can make a probe allocate or read more than that.
struct ProbeReader {
    let device: any BlockDevice

    /// The largest single read a prober may ask for (a FAT root directory is at most 65535
    /// entries of 32 bytes, 2 MiB; nothing else comes close).
    static let maxRead = 2 << 20

    /// blkid_probe_is_tiny: devices up to a 1.44 MB floppy are "tiny" (libblkid probe.c sets
    /// BLKID_FL_TINY_DEV for size <= 1440 KiB): RAID signatures are not looked for on them and
    /// the first filesystem found is the answer.
    static let tinySize: UInt64 = 1440 * 1024

    var size: UInt64 { device.size }
    var isTiny: Bool { device.size <= Self.tinySize }

    /// `count` bytes at `offset`, or nil when the range leaves the device, is larger than
    /// `maxRead`, or the read fails.
    func bytes(_ offset: UInt64, _ count: Int) -> ProbeBytes? {
        guard fits(offset, count) else { return nil }
        guard let b = try? device.readBytes(at: offset, count: count) else { return nil }
        return ProbeBytes(b)
    }

    /// Whether `[offset, offset+count)` lies inside the device and within `maxRead`.
    func fits(_ offset: UInt64, _ count: Int) -> Bool {
        guard count >= 0, count <= Self.maxRead else { return false }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        return !overflow && end <= device.size
    }

    /// Whether the bytes at `offset` are `magic` exactly.
    func matches(_ offset: UInt64, _ magic: [UInt8]) -> Bool {
        bytes(offset, magic.count)?.bytes == magic
    }
}

/// One structure read whole by a prober, with little- and big-endian field access.
///
/// Field offsets given to these accessors are the probers' own constants (from the layouts each
/// prober cites), never numbers read from disk: an offset outside the buffer is our bug and traps.
/// Offsets computed from image data are checked with `contains` before use.
struct ProbeBytes {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    func contains(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
    }

    func u8(_ offset: Int) -> UInt8 { bytes[offset] }
    func le16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: le(offset, 2)) }
    func le32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: le(offset, 4)) }
    func le64(_ offset: Int) -> UInt64 { le(offset, 8) }
    func be16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: be(offset, 2)) }
    func be32(_ offset: Int) -> UInt32 { UInt32(truncatingIfNeeded: be(offset, 4)) }
    func be64(_ offset: Int) -> UInt64 { be(offset, 8) }

    /// `length` bytes at `offset`.
    func slice(_ offset: Int, _ length: Int) -> [UInt8] {
        precondition(contains(offset, length), "field at \(offset)+\(length) outside a \(bytes.count)-byte structure")
        return Array(bytes[offset ..< offset + length])
    }

    /// Whether the bytes at `offset` are `magic`.
    func has(_ magic: [UInt8], at offset: Int) -> Bool {
        contains(offset, magic.count) && bytes[offset ..< offset + magic.count].elementsEqual(magic)
    }

    func isZero(_ offset: Int, _ length: Int) -> Bool { slice(offset, length).allSatisfy { $0 == 0 } }

    private func le(_ offset: Int, _ width: Int) -> UInt64 {
        precondition(contains(offset, width), "field at \(offset)+\(width) outside a \(bytes.count)-byte structure")
        var value: UInt64 = 0
        for i in stride(from: width - 1, through: 0, by: -1) { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }

    private func be(_ offset: Int, _ width: Int) -> UInt64 {
        precondition(contains(offset, width), "field at \(offset)+\(width) outside a \(bytes.count)-byte structure")
        var value: UInt64 = 0
        for i in 0 ..< width { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }
}

extension Array where Element == UInt8 {
    /// An ASCII string's bytes, for magic numbers.
    init(ascii: String) { self = Array(ascii.utf8) }
}
