import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// Header and table values near 2^64 in qcow2 images made by qemu-img: a typed error, never a trap.
@Suite struct Qcow2HostileTests {
    /// A 4 MiB qcow2 with data and one internal snapshot, so that nb_snapshots > 0.
    static func withSnapshot() throws -> HostileImage {
        try HostileImage("snap.qcow2") { p in
            try Shell.check("qemu-img create -q -f qcow2 \(Shell.quote(p)) 4M && qemu-io -f qcow2 -c 'write -P 7 0 64k' \(Shell.quote(p)) >/dev/null && qemu-img snapshot -c one \(Shell.quote(p))")
        }
    }

    @Test func snapshotsOffsetNear2to64IsATypedError() throws {
        for offset: UInt64 in [0xFFFF_FFFF_FFFF_0000, 0xFFFF_FFFF_FFFF_FE00, 1 << 63] {
            let image = try Self.withSnapshot()
            // snapshots_offset: qcow2 spec, "Header", bytes 64-71.
            try image.patchBE(64, offset, bytes: 8)
            let before = image.sha256
            expectImageError([image.path, "snapshot table"]) {
                _ = try Qcow2Metadata.read(from: RawImage(path: image.path, writable: false))
            }
            expectImageError([image.path, "snapshot table"]) { _ = try ImageOpener.open(path: image.path, options: ImageOpenOptions()) }
            #expect(image.sha256 == before)
        }
    }

    @Test func snapshotL1OffsetNear2to64InCheckIsACorruption() throws {
        let image = try Self.withSnapshot()
        // The snapshot table's first entry: l1_table_offset is its first 8 bytes.
        let table = try image.readBE(64, bytes: 8)
        try image.patchBE(table, 0xFFFF_FFFF_FFFF_0000, bytes: 8)
        let device = try ImageOpener.open(path: image.path, options: ImageOpenOptions())
        let result = try #require(device as? Qcow2Image).check()
        #expect(result.corruptions > 0)
        #expect(result.messages.contains { $0.contains("snapshot 'one'") }, "\(result.messages)")
    }

    /// iotest 271's compressed cluster with a subcluster bitmap: reading it is EIO, the rest of
    /// the disk (the next cluster, mapped by the same L2 table) still reads.
    @Test func compressedClusterWithABitmapFailsOnlyItsRange() throws {
        let image = try HostileImage("c.qcow2") { p in
            try Shell.check("qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=64k \(Shell.quote(p)) 1M && qemu-io -f qcow2 -c 'write -c -P 1 0 64k' -c 'write -P 2 64k 64k' \(Shell.quote(p)) >/dev/null")
        }
        let l2 = try image.readBE(try image.readBE(40, bytes: 8), bytes: 8) & 0x00FF_FFFF_FFFF_FE00
        // Entry 0's bitmap word (bytes 8-15 of the 16-byte extended entry) gets bit 0.
        try image.patchBE(l2 + 8, 1, bytes: 8)
        let before = image.sha256
        let device = try ImageOpener.open(path: image.path, options: ImageOpenOptions(corruptionLog: { _ in }))
        let e = expectImageError(["L2 entry", "subcluster bitmap"]) { _ = try device.readBytes(at: 0, count: 4096) }
        #expect(e?.errno == .ioError)
        #expect(try device.readBytes(at: 65536, count: 65536) == [UInt8](repeating: 2, count: 65536))
        #expect(image.sha256 == before)
    }

    /// Refcount table entries that all name one refcount block full of ones claim every cluster
    /// of 2^28 as used: the free-cluster search of a write stops a bounded distance past the end
    /// of the file with a typed error (it would otherwise walk all of them), and nothing is
    /// written.
    @Test func refcountsClaimingClustersFarPastTheFileFailTheWriteQuickly() throws {
        let image = try HostileImage("shared-refcount.qcow2") { p in
            try Shell.check("qemu-img create -q -f qcow2 -o cluster_size=65536,refcount_bits=16 \(Shell.quote(p)) 1G")
        }
        // Header: refcount_table_offset at 48 (8 bytes), refcount_table_clusters at 56 (4 bytes).
        let table = try image.readBE(48, bytes: 8)
        let tableClusters = try image.readBE(56, bytes: 4)
        let block = try image.readBE(table, bytes: 8)
        // Every 16-bit entry of the block is 1; every table entry names that block.
        let ones = [UInt8](repeating: 0, count: 65536).enumerated().map { $0.offset % 2 == 1 ? UInt8(1) : 0 }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: image.path))
        try handle.seek(toOffset: block)
        try handle.write(contentsOf: Data(ones))
        let entries = Int(tableClusters) * 65536 / 8
        var bytes = Data(capacity: entries * 8)
        for _ in 0..<entries { withUnsafeBytes(of: block.bigEndian) { bytes.append(contentsOf: $0) } }
        try handle.seek(toOffset: table)
        try handle.write(contentsOf: bytes)
        try handle.close()
        let before = image.sha256
        let device = try ImageOpener.open(path: image.path, format: .qcow2, writable: true)
        let started = Date()
        let e = expectImageError(["refcount", "past the end of the image file"]) {
            try device.writeBytes([UInt8](repeating: 9, count: 65536), at: 0)
        }
        #expect(e?.errno == .ioError)
        #expect(Date().timeIntervalSince(started) < 10)
        try? device.flush()
        #expect(image.sha256 == before)
    }
}
