import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// `RawImage.writeExtending(gathering:)`, the one pwritev the appending writers (VDI, VHD, QED,
/// Parallels) send a new block with: pieces land end to end, past IOV_MAX pieces too, and the
/// file and `size` grow to the end of the last one.
@Suite struct RawImageGatherWriteTests {
    @Test func piecesLandEndToEndAndGrowTheFile() throws {
        let dir = try TempDir()
        let path = dir.file("img")
        try Shell.check("truncate -s 4096 \(Shell.quote(path))")
        let image = try RawImage(path: path, writable: true)
        // 3 000 pieces (more than one pwritev takes), of 1 to 7 bytes, some empty, and zeros
        // from the shared region: 2.5 MiB of them, so more than one region's worth.
        var expected = [UInt8](repeating: 0, count: 8192)
        var arrays: [[UInt8]] = []
        for i in 0 ..< 3000 { arrays.append([UInt8](repeating: UInt8(truncatingIfNeeded: i * 7 + 1), count: i % 8)) }
        for a in arrays { expected += a }
        let zeros = (5 << 19)
        expected += [UInt8](repeating: 0, count: zeros)
        expected += [1, 2, 3]
        let tail: [UInt8] = [1, 2, 3]
        let pointers = arrays.map { a -> UnsafeMutableRawBufferPointer in
            let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(a.count, 1), alignment: 1)
            a.withUnsafeBytes { p.copyMemory(from: $0) }
            return UnsafeMutableRawBufferPointer(rebasing: p[..<a.count])
        }
        defer { for p in pointers { p.deallocate() } }
        // Stale bytes where the zeros go must be overwritten.
        try [UInt8](repeating: 0xEE, count: 1 << 20).withUnsafeBytes { try image.writeExtending($0, at: 8192 + 10_000) }
        try tail.withUnsafeBytes { t in
            try image.writeExtending(gathering: pointers.map { UnsafeRawBufferPointer($0) } + ZeroBytes.pieces(zeros) + [t], at: 8192)
        }
        #expect(image.size == UInt64(expected.count))
        let got = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(got.count == expected.count)
        #expect(Array(got) == expected)
        #expect(ZeroBytes.pieces(0).isEmpty)
        #expect(ZeroBytes.pieces(ZeroBytes.regionBytes + 1).map(\.count) == [ZeroBytes.regionBytes, 1])
    }

    @Test func readOnlyImageRefusesAndWritesNothing() throws {
        let dir = try TempDir()
        let path = dir.file("img")
        try Shell.check("truncate -s 4096 \(Shell.quote(path))")
        let image = try RawImage(path: path, writable: false)
        #expect(throws: ImageError.self) { try image.writeExtending(gathering: ZeroBytes.pieces(10), at: 4096) }
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == 4096)
    }
}
