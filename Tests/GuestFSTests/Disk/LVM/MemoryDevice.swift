import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect

/// A block device in memory, for the LVM tests: bytes a test lays out itself, reads counted.
final class MemoryDevice: BlockDevice, @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8]
    let displayName: String
    let isWritable: Bool
    private(set) var reads = 0

    init(_ bytes: [UInt8], name: String = "memory", writable: Bool = true) {
        self.bytes = bytes
        self.displayName = name
        self.isWritable = writable
    }

    convenience init(size: Int, name: String = "memory", writable: Bool = true) {
        self.init([UInt8](repeating: 0, count: size), name: name, writable: writable)
    }

    var size: UInt64 { UInt64(bytes.count) }

    var contents: [UInt8] { lock.withLock { bytes } }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        lock.withLock {
            reads += 1
            bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset) ..< Int(offset) + buffer.count])) }
        }
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        lock.withLock { bytes.replaceSubrange(Int(offset) ..< Int(offset) + buffer.count, with: buffer) }
    }

    func flush() throws {}
}
