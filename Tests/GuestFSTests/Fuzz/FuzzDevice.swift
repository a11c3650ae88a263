import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import GuestFSInspect

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
    /// A sparse image may describe at most this much device (nothing is allocated for the zeros).
    static let maxSparseSize: UInt64 = 16 << 20

    /// Non-zero pieces of the device, in input order (a later record wins where records overlap).
    // @unchecked: written only in init, then only read.
    private let pieces: [(offset: UInt64, bytes: ArraySlice<UInt8>)]
    let size: UInt64
    let displayName: String
    var isWritable: Bool { false }

    /// A device holding exactly `bytes`.
    init(bytes: [UInt8], name: String) {
        self.pieces = [(0, bytes[...])]
        self.size = UInt64(bytes.count)
        self.displayName = name
    }

    /// Decodes a fuzz input (raw or sparse, see the type's comment) into a device.
    init(input: [UInt8], name: String = "/nonexistent-fuzz/input") {
        self.displayName = name
        guard input.starts(with: Self.sparseMagic), input.count >= 16 else {
            self.pieces = [(0, input[...])]
            self.size = UInt64(input.count)
            return
        }
        var size: UInt64 = 0
        for i in 0..<8 { size |= UInt64(input[8 + i]) << (8 * i) }
        size = min(size, Self.maxSparseSize)
        var pieces: [(offset: UInt64, bytes: ArraySlice<UInt8>)] = []
        var pos = 16
        while pos + 6 <= input.count {
            var offset: UInt64 = 0
            for i in 0..<4 { offset |= UInt64(input[pos + i]) << (8 * i) }
            let length = Int(input[pos + 4]) | Int(input[pos + 5]) << 8
            pos += 6
            let available = min(length, input.count - pos)
            if offset < size {
                let n = Int(min(UInt64(available), size - offset))
                if n > 0 { pieces.append((offset, input[pos ..< pos + n])) }
            }
            pos += available
        }
        self.pieces = pieces
        self.size = size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        if pieces.count != 1 || pieces[0].offset != 0 { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
        let end = offset + UInt64(buffer.count)
        for piece in pieces {
            let pieceEnd = piece.offset + UInt64(piece.bytes.count)
            let from = max(offset, piece.offset), to = min(end, pieceEnd)
            guard from < to else { continue }
            let source = piece.bytes.startIndex + Int(from - piece.offset)
            piece.bytes[source ..< source + Int(to - from)].withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: buffer[Int(from - offset) ..< Int(to - offset)]).copyMemory(from: $0)
            }
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
