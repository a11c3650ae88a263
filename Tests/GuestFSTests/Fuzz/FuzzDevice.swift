import GuestFS

/// The in-memory block device every fuzz harness reads from: the fuzzer's bytes, read-only.
///
/// An input is either the device's bytes as they are, or a *sparse image* (`FuzzDevice.sparseMagic`,
/// then the device size as a little-endian UInt64, then records of offset (UInt32 LE), length
/// (UInt16 LE) and that many bytes; bytes no record covers are zero). The sparse form lets a seed
/// stand for a few-MiB filesystem in a few KiB, so libFuzzer mutates the metadata and not miles of
/// zeros. `scripts/fuzz-seeds.sh` writes seeds in that form (fuzz/tools/sparse.py).
final class FuzzDevice: BlockDevice, @unchecked Sendable {
    /// "IMFZSPRS": marks an input as a sparse image.
    static let sparseMagic: [UInt8] = Array("IMFZSPRS".utf8)
    /// A sparse image may describe at most this much device (bytes are allocated for all of it).
    static let maxSparseSize: UInt64 = 16 << 20

    // @unchecked: `bytes` is written only in init, then only read.
    private let bytes: [UInt8]
    let displayName: String
    var isWritable: Bool { false }
    var size: UInt64 { UInt64(bytes.count) }

    init(bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.displayName = name
    }

    /// Decodes a fuzz input (raw or sparse, see the type's comment) into a device.
    convenience init(input: [UInt8], name: String = "/nonexistent-fuzz/input") {
        self.init(bytes: Self.decode(input), name: name)
    }

    static func decode(_ input: [UInt8]) -> [UInt8] {
        guard input.starts(with: sparseMagic), input.count >= 16 else { return input }
        var size: UInt64 = 0
        for i in 0..<8 { size |= UInt64(input[8 + i]) << (8 * i) }
        size = min(size, maxSparseSize)
        var out = [UInt8](repeating: 0, count: Int(size))
        var pos = 16
        while pos + 6 <= input.count {
            var offset = 0
            for i in 0..<4 { offset |= Int(input[pos + i]) << (8 * i) }
            let length = Int(input[pos + 4]) | Int(input[pos + 5]) << 8
            pos += 6
            let available = min(length, input.count - pos)
            if offset < out.count {
                let n = min(available, out.count - offset)
                out.replaceSubrange(offset ..< offset + n, with: input[pos ..< pos + n])
            }
            pos += available
        }
        return out
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        bytes.withUnsafeBytes {
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset) ..< Int(offset) + buffer.count]))
        }
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }

    func flush() throws {}
}

extension BlockDevice {
    /// Reads `count` bytes at `offset`, clipped to the device; nil when nothing is left or the read fails.
    func fuzzRead(at offset: UInt64, count: Int) -> [UInt8]? {
        guard offset < size else { return nil }
        let n = Int(min(UInt64(count), size - offset))
        return try? readBytes(at: offset, count: n)
    }
}
