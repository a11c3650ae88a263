import Foundation
@testable import GuestFSBlock
@testable import GuestFSExt
import GuestFSFilesystem
import Testing
import TestSupport

@Suite struct IOWriteGatherTests {
    static func block(_ value: UInt8, size: Int = 1024) -> [UInt8] { [UInt8](repeating: value, count: size) }

    func hold(_ g: IOWriteGather, _ offset: UInt64, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { g.hold(at: offset, $0) }
    }

    /// Each block reaches the device once, with its last contents, at the place of its last
    /// write; blocks next to each other in that order and on the device go in one write.
    @Test func lastWriteOrderAndRuns() throws {
        let memory = MemoryDevice(size: 64 * 1024), device = RecordingWrapper(memory)
        let g = IOWriteGather(capacity: 16)
        g.begin(unit: 1024, limit: device.size)
        #expect(g.holds(offset: 4096, length: 1024) && !g.holds(offset: 100, length: 1024) && !g.holds(offset: 0, length: 512))
        #expect(hold(g, 10 * 1024, Self.block(1)))      // data block 10 (first contents)
        #expect(hold(g, 2 * 1024, Self.block(2)))       // "inode" block 2
        #expect(hold(g, 10 * 1024, Self.block(3)))      // block 10 again: its last write is now here
        #expect(hold(g, 11 * 1024, Self.block(4)))      // block 11 follows 10 in order and on disk
        #expect(hold(g, 2 * 1024, Self.block(5)))       // block 2 last
        #expect(device.writes.isEmpty)
        // A read sees the held contents over the device's.
        var buffer = [UInt8](repeating: 0xEE, count: 3 * 1024)
        buffer.withUnsafeMutableBytes { g.overlay(at: 9 * 1024, $0) }
        #expect(buffer[0] == 0xEE && buffer[1024] == 3 && buffer[2048] == 4)
        try g.drain(to: device)
        g.end()
        #expect(device.writes.map(\.offset) == [10 * 1024, 2 * 1024])
        #expect(device.writes.map(\.count) == [2048, 1024])
        let bytes = memory.contents
        #expect(bytes[10 * 1024] == 3 && bytes[11 * 1024] == 4 && bytes[2 * 1024] == 5)
        #expect(g.isEmpty)
    }

    /// A full gather refuses more blocks (the caller drains and holds again); rewriting a held
    /// block needs no new slot.
    @Test func capacityAndRewrites() throws {
        let memory = MemoryDevice(size: 64 * 1024), device = RecordingWrapper(memory)
        let g = IOWriteGather(capacity: 2)
        g.begin(unit: 1024, limit: device.size)
        #expect(hold(g, 0, Self.block(1, size: 2048)))
        #expect(hold(g, 1024, Self.block(9)))
        #expect(!hold(g, 4096, Self.block(2)))
        try g.drain(to: device)
        #expect(hold(g, 4096, Self.block(2)))
        try g.drain(to: device)
        #expect(device.writes.map(\.offset) == [0, 4096] && memory.contents[1024] == 9)
    }

    /// Writes past the device's end, up to offsets the io_manager shim wraps near 2^64 from a
    /// hostile block number, are not held (they go to the device, which refuses them), so no
    /// held offset plus a length can overflow in overlay or drain.
    @Test func rangesPastTheDeviceAreNotHeld() throws {
        let g = IOWriteGather(capacity: 4)
        g.begin(unit: 1024, limit: 8192)
        #expect(g.holds(offset: 7168, length: 1024))
        #expect(!g.holds(offset: 7168, length: 2048))
        #expect(!g.holds(offset: 8192, length: 1024))
        #expect(!g.holds(offset: UInt64.max - 1023, length: 1024))
        #expect(!g.holds(offset: UInt64.max - 1023 - 1024, length: 4096))
        #expect(!g.holds(offset: 0, length: 16384))
    }

    /// A failing device: the error goes up and nothing stays held.
    @Test func drainErrorForgetsEverything() throws {
        let device = RecordingWrapper(MemoryDevice(size: 8192))
        device.failWrites = true
        let g = IOWriteGather(capacity: 4)
        g.begin(unit: 1024, limit: device.size)
        #expect(hold(g, 0, Self.block(1)))
        #expect(throws: ImageError.self) { try g.drain(to: device) }
        #expect(g.isEmpty)
    }

    /// Through libext2fs: a 1 MiB write into a new file reaches the device in a handful of
    /// writes (it took 1 047 before the gather: each data block, and the inode's table block
    /// three times per block), the file reads back, and e2fsck -fn is clean.
    @Test func oneMebibyteWriteIsAFewDeviceWrites() throws {
        let dir = try TempDir("imagemount-gather")
        let path = dir.file("fs.img")
        try Shell.check("truncate -s 32M \(Shell.quote(path)) && mke2fs -q -F -t ext4 \(Shell.quote(path))")
        let device = try RecordingWrapper(RawImage(path: path, writable: true))
        let fs = try Ext2Filesystem(device: device, writable: true)
        let ino = try fs.createNode(in: Ext2Filesystem.rootInode, name: Array("big".utf8), NewInode(mode: 0o100644, uid: 0, gid: 0))
        let data = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        let before = device.writes.count
        let n = try data.withUnsafeBytes { try fs.write(ino, at: 0, $0) }
        #expect(n == data.count)
        let during = device.writes.count - before
        #expect(during <= 12, "\(during) device writes for a 1 MiB file write")
        let file = try fs.openFile(ino)
        var back = [UInt8](repeating: 0, count: data.count)
        #expect(try back.withUnsafeMutableBytes { try file.read(into: $0, at: 0) } == data.count)
        #expect(back == data)
        try fs.close()
        let r = try Shell.run("e2fsck -fn \(Shell.quote(path)) 2>&1")
        #expect(r.status == 0, "\(r.text)")
    }
}

/// Records the writes that reach a device (offset and length of each), and can refuse them.
final class RecordingWrapper: BlockDevice, @unchecked Sendable {
    let base: any BlockDevice
    private(set) var writes: [(offset: UInt64, count: Int)] = []
    var failWrites = false
    init(_ base: any BlockDevice) { self.base = base }
    var size: UInt64 { base.size }
    var isWritable: Bool { base.isWritable }
    var displayName: String { base.displayName }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws { try base.read(into: buffer, at: offset) }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        if failWrites { throw ImageError(path: displayName, offset: offset, structure: "write", reason: "refused") }
        writes.append((offset, buffer.count))
        try base.write(buffer, at: offset)
    }
    func flush() throws { try base.flush() }
}
