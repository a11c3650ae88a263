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

/// Wraps a device and counts reads, by the offsets they start at (e2fsprogs' test_io in spirit).
final class CountingDevice: BlockDevice, @unchecked Sendable {
    let base: any BlockDevice
    let reads = Locked<[(offset: UInt64, length: Int)]>([])
    init(_ base: any BlockDevice) { self.base = base }
    var size: UInt64 { base.size }
    var isWritable: Bool { false }
    var displayName: String { base.displayName }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        reads.withValue { $0.append((offset, buffer.count)) }
        try base.read(into: buffer, at: offset)
    }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }
    func flush() throws {}
    func reset() { reads.value = [] }
}

@Suite struct Qcow2ClusterMapTests {
    static func open(_ name: String) throws -> (Qcow2Image, CountingDevice) {
        let f = try Qcow2Fixtures.get()
        let counting = CountingDevice(try RawImage(path: f.path(name), writable: false))
        return (try Qcow2Image(device: counting), counting)
    }

    /// Every extent over the whole disk, in order.
    static func extents(_ image: Qcow2Image) throws -> [(UInt64, Qcow2Extent)] {
        var out: [(UInt64, Qcow2Extent)] = []
        var pos: UInt64 = 0
        while pos < image.size {
            let e = try image.mapping(guestOffset: pos, length: Int(min(image.size - pos, 1 << 30)))
            #expect(e.length > 0)
            out.append((pos, e))
            pos += UInt64(e.length)
        }
        return out
    }

    @Test func secondReadOfTheSameAreaLoadsNoTable() throws {
        let (image, device) = try Self.open("v3-4k.qcow2")
        device.reset()
        _ = try image.readBytes(at: 1_000_000, count: 10_000)
        let first = device.reads.value
        let l1 = image.map.l1[image.map.geometry.l1Index(1_000_000)] & Qcow2.offsetMask
        // One L2 slice load, then data reads.
        #expect(first.filter { $0.offset >= l1 && $0.offset < l1 + 4096 }.count == 1)
        #expect(image.l2CacheStatistics.loads == 1)
        device.reset()
        _ = try image.readBytes(at: 1_000_000, count: 10_000)
        let second = device.reads.value
        #expect(second.allSatisfy { !($0.offset >= l1 && $0.offset < l1 + 4096) }, "second read loaded an L2 slice again")
        #expect(second.count == first.count - 1)
        #expect(image.l2CacheStatistics.loads == 1)
    }

    @Test func cacheBudgetIsHonouredOnAWholeImageRead() throws {
        let f = try Qcow2Fixtures.get()
        // 512-byte clusters: one slice (512 B) per 32 KiB of guest, so a whole read needs ~160 slices.
        let image = try Qcow2Image(device: try RawImage(path: f.path("v3-512.qcow2"), writable: false),
                                   options: ImageOpenOptions(l2CacheBytes: 8 * 512))
        _ = try image.readBytes(at: 0, count: Int(image.size))
        #expect(image.map.cache.count <= 8)
        #expect(image.l2CacheStatistics.loads > 100)
        #expect(try image.readBytes(at: 0, count: Int(image.size)) == (try f.oracle("v3-512.qcow2")))
    }

    @Test func contiguousDataIsOneExtent() throws {
        let (image, device) = try Self.open("v3-64k.qcow2")
        // src.raw converted: the first 40 KiB are contiguous data at the start of the data area.
        let e = try image.mapping(guestOffset: 0, length: 40 * 1024)
        guard case .data = e.kind else { Issue.record("expected data, got \(e.kind)"); return }
        #expect(e.length == 40 * 1024)
        device.reset()
        _ = try image.readBytes(at: 4096, count: 30_000)
        // The mapping above cached the L2 slice: a read inside the run is one data read.
        #expect(device.reads.value.count == 1)
    }

    @Test func zeroAndUnallocatedClustersAreTyped() throws {
        let (image, _) = try Self.open("v3-64k.qcow2")
        // `write -z -u 3M 64k` on a whole cluster sets the zero flag.
        #expect(try image.mapping(guestOffset: 3 << 20, length: 65536).kind == .zero)
        // `discard 2560k 128k` drops two whole clusters; with no backing file they read as zeros.
        let discarded = try image.mapping(guestOffset: 2560 * 1024, length: 65536).kind
        #expect(discarded == .zero || discarded == .unallocated)
        // The zero half MiB of src.raw was left unallocated by convert.
        #expect(try image.mapping(guestOffset: 2 << 20, length: 65536).kind == .unallocated)
    }

    @Test func compressedClustersAreOnePerExtent() throws {
        for name in ["zlib-64k.qcow2", "zstd-64k.qcow2", "zstd-2m.qcow2"] {
            let (image, _) = try Self.open(name)
            let all = try Self.extents(image)
            let compressed = all.filter { if case .compressed = $0.1.kind { return true }; return false }
            #expect(compressed.count >= 2, "\(name): too few compressed clusters")
            #expect(compressed.allSatisfy { $0.1.length <= image.map.geometry.clusterSize })
            // The incompressible random half MiB is stored as plain data.
            #expect(all.contains { if case .data = $0.1.kind { return true }; return false }, "\(name): no plain clusters")
        }
    }

    @Test func subclustersMixDataZeroAndBacking() throws {
        let (image, _) = try Self.open("extl2-backed.qcow2")
        #expect(image.map.geometry.subclusterSize == 1024)
        // Cluster 0 (32 KiB): subclusters 2-3 written, 8-11 zeroed, the rest from the backing file.
        #expect(try image.mapping(guestOffset: 0, length: 32768) == Qcow2Extent(kind: .unallocated, length: 2048))
        let data = try image.mapping(guestOffset: 2048, length: 32768)
        guard case .data = data.kind else { Issue.record("expected data, got \(data.kind)"); return }
        #expect(data.length == 2048)
        #expect(try image.mapping(guestOffset: 4096, length: 32768) == Qcow2Extent(kind: .unallocated, length: 4096))
        #expect(try image.mapping(guestOffset: 8192, length: 32768) == Qcow2Extent(kind: .zero, length: 4096))
        // Asking mid-subcluster maps from there.
        let mid = try image.mapping(guestOffset: 2048 + 100, length: 10)
        guard case .data(let host) = mid.kind, case .data(let host0) = data.kind else { Issue.record("\(mid)"); return }
        #expect(host == host0 + 100 && mid.length == 10)
    }

    @Test func l2EntryDecoding() throws {
        let g = Qcow2Geometry(clusterBits: 16, extendedL2: false)
        #expect(try Qcow2L2Entry(word: 0, bitmap: 0, geometry: g, externalData: false).kind == .unallocated)
        #expect(try Qcow2L2Entry(word: 1, bitmap: 0, geometry: g, externalData: false).kind == .zero)
        #expect(try Qcow2L2Entry(word: 1 << 63 | 0x30000, bitmap: 0, geometry: g, externalData: false).kind == .data(host: 0x30000))
        // Host offset 0 with the copied bit: data only with an external data file.
        #expect(try Qcow2L2Entry(word: 1 << 63, bitmap: 0, geometry: g, externalData: true).kind == .data(host: 0))
        #expect(try Qcow2L2Entry(word: 1 << 63, bitmap: 0, geometry: g, externalData: false).kind == .unallocated)
        #expect(throws: Qcow2FormatError.self) { try Qcow2L2Entry(word: 0x30200, bitmap: 0, geometry: g, externalData: false) }
        // Compressed: x = 62 - (16 - 8) = 54; 3 additional sectors, offset 0x12345.
        let c = try Qcow2L2Entry(word: 1 << 62 | 3 << 54 | 0x12345, bitmap: 0, geometry: g, externalData: false)
        #expect(c.kind == .compressed(Qcow2CompressedDescriptor(entry: 1 << 62 | 3 << 54 | 0x12345, geometry: g)))
        if case .compressed(let d) = c.kind { #expect(d.hostOffset == 0x12345 && d.length == 4 * 512 - 0x145) }
        #expect(throws: Qcow2FormatError.self) { try Qcow2L2Entry(word: 1 << 62, bitmap: 0, geometry: g, externalData: true) }
        let x = Qcow2Geometry(clusterBits: 16, extendedL2: true)
        #expect(throws: Qcow2FormatError.self) { try Qcow2L2Entry(word: 0x30000, bitmap: 1 | 1 << 32, geometry: x, externalData: false) }
        #expect(throws: Qcow2FormatError.self) { try Qcow2L2Entry(word: 0, bitmap: 1, geometry: x, externalData: false) }
        let sub = try Qcow2L2Entry(word: 0x30000, bitmap: 0b10 | 0b100 << 32, geometry: x, externalData: false)
        #expect(sub.unit(0, geometry: x) == .unallocated)
        #expect(sub.unit(1, geometry: x) == .data(host: 0x30000 + 2048))
        #expect(sub.unit(2, geometry: x) == .zero)
    }
}
