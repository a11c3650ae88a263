import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing

/// A base device in memory that counts writes, so a test sees that none reach it.
final class CountingMemoryDevice: BlockDevice, @unchecked Sendable {
    var bytes: [UInt8]
    private(set) var writes = 0
    init(size: Int) { bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) } }
    var size: UInt64 { UInt64(bytes.count) }
    var isWritable: Bool { false }
    var displayName: String { "memory" }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: buffer.count) }
    }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        writes += 1
        throw readOnlyError(offset: offset)
    }
    func flush() throws {}
}

@Suite struct MemoryOverlayDeviceTests {
    @Test func readsMergeWrittenBytesOverTheBaseAndTheBaseIsNeverWritten() throws {
        let base = CountingMemoryDevice(size: 10_000)
        let overlay = MemoryOverlayDevice(base: base, chunkSize: 1024, maxBytes: 1 << 20)
        var expected = base.bytes
        // Unaligned, spanning chunks, and one in the short last chunk.
        for (offset, length, value) in [(1000, 100, UInt8(0xAA)), (3000, 2500, 0xBB), (9990, 10, 0xCC), (1050, 10, 0xDD)] {
            try overlay.writeBytes([UInt8](repeating: value, count: length), at: UInt64(offset))
            expected.replaceSubrange(offset..<offset + length, with: [UInt8](repeating: value, count: length))
        }
        #expect(try overlay.readBytes(at: 0, count: 10_000) == expected)
        for (offset, length) in [(0, 1), (999, 3), (1023, 2), (2047, 1100), (9000, 1000), (5500, 1)] {
            #expect(try overlay.readBytes(at: UInt64(offset), count: length) == Array(expected[offset..<offset + length]))
        }
        #expect(base.writes == 0)
        #expect(overlay.isWritable)
        #expect(overlay.modifiedRanges.map(\.offset) == [0, 1024, 2048, 3072, 4096, 5120, 9216])
        #expect(overlay.bytesInMemory == 6 * 1024 + 784)
    }

    @Test func exceedingTheCapThrowsENOSPCAndKeepsWhatWasThere() throws {
        let base = CountingMemoryDevice(size: 8192)
        let overlay = MemoryOverlayDevice(base: base, chunkSize: 1024, maxBytes: 2048)
        try overlay.writeBytes([1, 2, 3], at: 0)
        try overlay.writeBytes([4], at: 1500)
        // Rewriting held chunks costs nothing more.
        try overlay.writeBytes([UInt8](repeating: 9, count: 2048), at: 0)
        let error = #expect(throws: ImageError.self) { try overlay.writeBytes([5], at: 4096) }
        #expect(error?.errno == .noSpace)
        #expect(try overlay.readBytes(at: 4096, count: 1) == [base.bytes[4096]])
        #expect(overlay.bytesInMemory == 2048)
        #expect(throws: ImageError.self) { try overlay.writeBytes([1], at: 8192) }
    }

    @Test func concurrentReadsSeeConsistentData() throws {
        let base = CountingMemoryDevice(size: 1 << 20)
        let overlay = MemoryOverlayDevice(base: base, chunkSize: 4096, maxBytes: 1 << 20)
        for i in stride(from: 0, to: 1 << 20, by: 8192) {
            try overlay.writeBytes([UInt8](repeating: 0xEE, count: 4096), at: UInt64(i))
        }
        let expected = try overlay.readBytes(at: 0, count: 1 << 20)
        let failures = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let offset = (i * 12_345) % ((1 << 20) - 70_000)
            if (try? overlay.readBytes(at: UInt64(offset), count: 70_000)) != Array(expected[offset..<offset + 70_000]) {
                failures.add()
            }
        }
        #expect(failures.value == 0)
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
