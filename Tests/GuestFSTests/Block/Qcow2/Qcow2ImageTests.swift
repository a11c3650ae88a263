import Dispatch
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

/// Every byte read through `Qcow2Image` equals what `qemu-img convert -O raw` makes of the image.
@Suite struct Qcow2ImageTests {
    /// Reads `device` whole, in odd-sized chunks, and at seeded random offsets that straddle
    /// (sub)cluster edges, comparing with `expected`.
    static func compare(_ device: any BlockDevice, with expected: [UInt8], unit: Int, label: String) throws {
        #expect(device.size == UInt64(expected.count), "\(label): size")
        guard device.size == UInt64(expected.count) else { return }
        let size = expected.count

        // One read of the whole image (exercises parallel decompression).
        let whole = try device.readBytes(at: 0, count: size)
        // (A Bool first: #expect would print both arrays, megabytes, when they differ.)
        let wholeMatches = Self.same(whole, expected[...])
        #expect(wholeMatches, "\(label): whole-image read differs at byte \(firstDifference(whole, expected))")

        // Sequential chunks of a size that is no multiple of anything.
        var pos = 0
        let chunk = 300_001
        while pos < size {
            let n = min(chunk, size - pos)
            let got = try device.readBytes(at: UInt64(pos), count: n)
            if !Self.same(got, expected[pos..<(pos + n)]) {
                Issue.record("\(label): chunk at \(pos) differs at byte \(pos + firstDifference(got, Array(expected[pos..<(pos + n)])))")
                return
            }
            pos += n
        }

        // Random reads around unit edges: start a little before an edge, run past the next ones.
        var rng = SplitMix64(seed: 0xC0FFEE)
        for _ in 0..<300 {
            let edge = Int.random(in: 0...(size / unit), using: &rng) * unit
            let start = max(0, min(size - 1, edge - Int.random(in: 0...min(unit, 4096), using: &rng)))
            let length = min(size - start, Int.random(in: 1...(3 * unit + 17), using: &rng))
            let got = try device.readBytes(at: UInt64(start), count: length)
            if !Self.same(got, expected[start..<(start + length)]) {
                Issue.record("\(label): read of \(length) bytes at \(start) differs")
                return
            }
        }
    }

    /// Byte equality with memcmp: element-wise comparison is slow in debug builds.
    static func same(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in a.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
    }

    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    }

    /// The unit random reads straddle: the subcluster size for extended L2, else the cluster size.
    static func unit(of device: any BlockDevice) -> Int {
        (device as? Qcow2Image)?.map.geometry.subclusterSize ?? 4096
    }

    @Test("image reads equal qemu-img convert -O raw", arguments: Qcow2Fixtures.matrix)
    func matchesOracle(_ name: String) throws {
        let f = try Qcow2Fixtures.get()
        let device = try ImageOpener.open(path: f.path(name), format: nil, writable: false)
        #expect(device is Qcow2Image)
        try Self.compare(device, with: try f.oracle(name), unit: Self.unit(of: device), label: name)
    }

    @Test("snapshot reads equal qemu-img convert -l snapshot.name=", arguments: Qcow2Fixtures.snapshots.indices)
    func snapshotMatchesOracle(_ index: Int) throws {
        let (image, snapshot, oracleName) = Qcow2Fixtures.snapshots[index]
        let f = try Qcow2Fixtures.get()
        let device = try ImageOpener.open(path: f.path(image), format: .qcow2, writable: false, snapshot: snapshot)
        let qcow2 = try #require(device as? Qcow2Image)
        #expect(qcow2.openedSnapshot?.name == oracleName)
        #expect(!device.isWritable)
        try Self.compare(device, with: try f.oracle(image, snapshot: oracleName), unit: Self.unit(of: device),
                         label: "\(image)@\(snapshot)")
    }

    @Test func snapshotsDifferFromEachOtherAndTheActiveState() throws {
        let f = try Qcow2Fixtures.get()
        let one = try f.oracle("snap.qcow2", snapshot: "one"), two = try f.oracle("snap.qcow2", snapshot: "two")
        #expect(one != two)
        #expect(two != (try f.oracle("snap.qcow2")))
        let image = try Qcow2Image(device: try RawImage(path: f.path("snap.qcow2"), writable: false))
        #expect(image.metadata.snapshots.map(\.name) == ["one", "two"])
        #expect(image.metadata.snapshots.map(\.id) == ["1", "2"])
        #expect(image.metadata.snapshots.allSatisfy { $0.diskSize == UInt64(Qcow2Fixtures.virtualSize) })
    }

    @Test func unknownSnapshotIsRefused() throws {
        let f = try Qcow2Fixtures.get()
        #expect(throws: ImageError.self) {
            try ImageOpener.open(path: f.path("snap.qcow2"), format: nil, writable: false, snapshot: "three")
        }
        #expect(throws: ImageError.self) {
            try ImageOpener.open(path: f.path("src.raw"), format: nil, writable: false, snapshot: "one")
        }
    }

    @Test func concurrentReadsFromManyThreads() throws {
        let f = try Qcow2Fixtures.get()
        for name in ["zstd-64k.qcow2", "top.qcow2", "extl2-backed.qcow2"] {
            let device = try ImageOpener.open(path: f.path(name), format: nil, writable: false)
            let expected = try f.oracle(name)
            let failures = Locked(0)
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                var rng = SplitMix64(seed: UInt64(worker))
                for _ in 0..<100 {
                    let start = Int.random(in: 0..<expected.count, using: &rng)
                    let length = min(expected.count - start, Int.random(in: 1...200_000, using: &rng))
                    let ok = (try? device.readBytes(at: UInt64(start), count: length))
                        .map { Self.same($0, expected[start..<(start + length)]) } ?? false
                    if !ok { failures.withValue { $0 += 1 } }
                }
            }
            #expect(failures.value == 0, "\(name): \(failures.value) concurrent reads differ")
        }
    }

    @Test func backingChainIsOpenedReadOnlyWithResolvedPaths() throws {
        let f = try Qcow2Fixtures.get()
        // A copy: a writable open holds QEMU's write locks, which would stop oracles being made.
        let copy = f.path("top-rw-copy.qcow2")
        try Shell.check("cp \(Shell.quote(f.path("top.qcow2"))) \(Shell.quote(copy))")
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let top = try #require(try ImageOpener.open(path: copy, format: nil, writable: true) as? Qcow2Image)
        #expect(top.isWritable)
        #expect(top.backingPath == f.path("mid.qcow2"))
        #expect(!(top.backing?.isWritable ?? true))
        let mid = try #require(top.backing as? Qcow2Image)
        #expect(mid.metadata.backingFile == "base.raw")
        #expect(mid.backingPath == f.path("base.raw"))
        let base = try #require(mid.backing as? RawImage)
        #expect(!base.isWritable)
        #expect(base.size < mid.size)
    }

    @Test func headerFieldsOfVersion2And3() throws {
        let f = try Qcow2Fixtures.get()
        let v2 = try Qcow2Metadata.read(from: try RawImage(path: f.path("v2-64k.qcow2"), writable: false))
        #expect(v2.header.version == 2 && v2.header.compat == "0.10" && v2.header.refcountOrder == 4)
        #expect(v2.header.headerLength == 72 && v2.header.clusterBits == 16)
        let zstd = try Qcow2Metadata.read(from: try RawImage(path: f.path("zstd-64k.qcow2"), writable: false))
        #expect(zstd.header.version == 3 && zstd.compressionType == .zstd)
        #expect(zstd.header.incompatible.contains(.compressionType))
        #expect(zstd.extensions.name(of: .incompatible, bit: 4) == "extended L2 entries")
        let ext = try Qcow2Metadata.read(from: try RawImage(path: f.path("extdata-raw.qcow2"), writable: false))
        #expect(ext.extensions.externalDataFile == "extdata-raw.bin")
        #expect(ext.header.autoclear.contains(.rawExternalData))
        let l2 = try Qcow2Metadata.read(from: try RawImage(path: f.path("extl2-backed.qcow2"), writable: false))
        #expect(l2.geometry.extendedL2 && l2.geometry.subclusterSize == 1024)
        #expect(l2.extensions.backingFormat == "raw" && l2.backingFile == "back.raw")
    }

    /// A snapshot stays read-only even when writing was asked for.
    @Test func snapshotOpensRefuseWrites() throws {
        let f = try Qcow2Fixtures.get()
        let device = try ImageOpener.open(path: f.path("snap.qcow2"), format: nil, writable: true, snapshot: "one")
        #expect(!device.isWritable)
        #expect(throws: ImageError.self) { try device.writeBytes([1, 2, 3], at: 0) }
        #expect(try f.oracle("snap.qcow2", snapshot: "one")[0..<3] == (try device.readBytes(at: 0, count: 3))[...])
    }
}
