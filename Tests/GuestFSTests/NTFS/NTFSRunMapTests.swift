import CNtfs3g
import Foundation
import GuestFSBlock
import GuestFSFilesystem
@testable import GuestFSNTFS
import Synchronization
import Testing
import TestSupport

/// The direct read path (NTFSRunMap): runlists libntfs-3g gives for fragmented, sparse and
/// partly initialized files, read from the device without the library lock, compared byte for
/// byte with ntfs-3g's own mount, with ntfscat and with our ntfs_attr_pread path; the
/// fallbacks (compressed, resident, empty, writable volumes); hostile runlists fed to the map
/// builder directly.
@Suite(.serialized) struct NTFSRunMapTests {
    static let images = Result { try NTFSRunImages() }

    static func open(_ path: String) throws -> NTFSFilesystem {
        try NTFSFilesystem(device: try RawImage(path: path, writable: false))
    }

    static func node(_ fs: NTFSFilesystem, _ path: String) throws -> UInt64 {
        var node = fs.rootNode
        for part in path.split(separator: "/") {
            node = try #require(try fs.lookup(node, Array(part.utf8)), "\(path)")
        }
        return node
    }

    /// `length` bytes at `offset` through `read` (any number of calls), as a short read at the end.
    static func read(_ read: (UnsafeMutableRawBufferPointer, UInt64) throws -> Int, _ offset: UInt64, _ length: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xA5, count: length)
        var done = 0
        while done < length {
            let n = try out.withUnsafeMutableBytes { try read(UnsafeMutableRawBufferPointer(rebasing: $0[done...]), offset + UInt64(done)) }
            if n == 0 { break }
            done += n
        }
        return Array(out.prefix(done))
    }

    /// The bytes of every fixture file as ntfs-3g's read-only mount shows them.
    static func oracle(_ image: String) throws -> [String: [UInt8]] {
        let mnt = try TempDir("imagemount-ntfs-runs-oracle")
        try NTFSImages.mountNtfs3g(image, at: mnt.path, options: "ro")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(mnt.path)) || fusermount -u -z \(Shell.quote(mnt.path))") }
        var out: [String: [UInt8]] = [:]
        for path in NTFSRunImages.all {
            out[path] = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mnt.file(path))))
        }
        return out
    }

    @Test func plainFilesAreMappedAndTheRestFallBack() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        var runs = 0
        for path in NTFSRunImages.fragmented {
            let map = try #require(try fs.open(Self.node(fs, path)).map, "\(path) not mapped")
            // Written into the gaps: several runs each, none a hole.
            #expect(map.runs.count >= 4 && map.runs.allSatisfy { $0.deviceOffset != nil }, "\(path): \(map.runs.count) runs")
            runs += map.runs.count
        }
        #expect(runs >= 30)
        let sparse = try #require(try fs.open(Self.node(fs, NTFSRunImages.sparse)).map)
        #expect(sparse.runs.contains { $0.deviceOffset == nil } && sparse.runs.contains { $0.deviceOffset != nil }, "\(sparse.runs)")
        let partly = try #require(try fs.open(Self.node(fs, NTFSRunImages.uninitialized)).map)
        #expect(partly.initializedSize == NTFSRunImages.initializedSize && partly.dataSize == 1 << 20)
        #expect(partly.runs.last?.end == NTFSRunImages.initializedSize)
        // Compressed and resident data stay with ntfs_attr_pread; an empty file needs no map.
        #expect(try fs.open(Self.node(fs, NTFSRunImages.compressed)).map == nil)
        #expect(try fs.open(Self.node(fs, NTFSRunImages.resident)).map == nil)
        #expect(try fs.open(Self.node(fs, NTFSRunImages.empty)).map == nil)
        // A writable volume's runlists change under libntfs-3g's writes: never mapped.
        let copy = try TempDir("imagemount-ntfs-runs-rw")
        try Shell.check("cp --sparse=always \(Shell.quote(images.image)) \(Shell.quote(copy.file("rw.img")))")
        let rw = try NTFSFilesystem(device: try RawImage(path: copy.file("rw.img"), writable: true), writable: true)
        defer { try? rw.close() }
        #expect(rw.isWritable)
        #expect(try rw.open(Self.node(rw, NTFSRunImages.fragmented[0])).map == nil)
    }

    @Test func bytesMatchNtfs3gAtOddOffsets() throws {
        let images = try Self.images.get()
        let want = try Self.oracle(images.image)
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        var boundaries = 0
        for path in NTFSRunImages.all {
            let node = try Self.node(fs, path)
            let file = try fs.open(node)
            let expected = try #require(want[path])
            #expect(file.size == UInt64(expected.count), "\(path)")
            // Whole file in odd chunks.
            var whole: [UInt8] = []
            while whole.count < expected.count + 1 {
                let chunk = try Self.read(file.read, UInt64(whole.count), 65_537)
                if chunk.isEmpty { break }
                whole += chunk
            }
            #expect(whole == expected, "\(path): \(whole.count) bytes, want \(expected.count)")
            // Around every run boundary (and initialized_size), short and long reads that start
            // before it and end after it, against ntfs-3g and against our ntfs_attr_pread path.
            var points: [UInt64] = [0, UInt64(expected.count)]
            if let map = file.map { points += map.runs.map(\.end) + [map.initializedSize] }
            for point in points {
                for (back, length) in [(1, 2), (3, 7), (4097, 8193), (0, 1), (511, 131_073)] {
                    let start = point >= UInt64(back) ? point - UInt64(back) : 0
                    let got = try Self.read(file.read, start, length)
                    let lo = Int(min(start, UInt64(expected.count)))
                    let hi = min(lo + length, expected.count)
                    #expect(got == Array(expected[lo ..< hi]), "\(path) at \(start)+\(length)")
                    let library = try Self.read({ try fs.readData(node, into: $0, at: $1) }, start, length)
                    #expect(got == library, "\(path) at \(start)+\(length): the map and ntfs_attr_pread differ")
                    boundaries += 1
                }
            }
        }
        #expect(boundaries > 100)
    }

    /// The patched file: ntfscat (ntfs_attr_pread) gives its first initialized_size bytes and
    /// zeros after, ntfsfix -n finds nothing wrong, and so do we.
    @Test func bytesPastInitializedSizeAreZeros() throws {
        let images = try Self.images.get()
        #expect(images.patched.hasPrefix("1048576 1048576 1048576"), "\(images.patched)")
        let fix = try Shell.run("ntfsfix -n \(Shell.quote(images.image))")
        #expect(fix.status == 0, "\(fix.text)\(fix.stderr)")
        let cat = try Shell.run("ntfscat \(Shell.quote(images.image)) /\(NTFSRunImages.uninitialized)")
        let bytes = [UInt8](cat.stdout)
        let initialized = Int(NTFSRunImages.initializedSize)
        #expect(bytes.count == 1 << 20 && bytes[initialized...].allSatisfy { $0 == 0 } && bytes[..<initialized].contains { $0 != 0 })
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        let file = try fs.open(Self.node(fs, NTFSRunImages.uninitialized))
        #expect(file.map != nil)
        #expect(try Self.read(file.read, 0, 1 << 21) == bytes)
        #expect(try Self.read(file.read, UInt64(initialized - 5), 11) == Array(bytes[(initialized - 5) ..< (initialized + 6)]))
    }

    @Test func concurrentReadsOfMappedFiles() throws {
        let images = try Self.images.get()
        let want = try Self.oracle(images.image)
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        let files = try NTFSRunImages.fragmented.map { try fs.open(Self.node(fs, $0)) }
        let mismatches = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var seed = UInt64(worker + 1) &* 0x9E37_79B9_7F4A_7C15
            for _ in 0 ..< 200 {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let which = Int(seed >> 60) % files.count
                let expected = want[NTFSRunImages.fragmented[which]] ?? []
                let start = Int((seed >> 20) % UInt64(expected.count))
                let length = Int((seed >> 8) % 200_000) + 1
                let got = (try? Self.read(files[which].read, UInt64(start), length)) ?? []
                if got != Array(expected[start ..< min(start + length, expected.count)]) { mismatches.withLock { $0 += 1 } }
            }
        }
        #expect(mismatches.withLock { $0 } == 0)
    }

    /// What libntfs-3g could hand over from hostile mapping pairs: every oddity is refused (the
    /// attribute then stays with ntfs_attr_pread), none traps.
    @Test func hostileRunlistsAreRefused() {
        typealias E = (vcn: Int64, lcn: Int64, length: Int64)
        func make(_ e: [E], data: UInt64 = 16384, initialized: UInt64 = 16384, device: UInt64 = 1 << 20) -> Result<NTFSRunMap, NTFSRunMap.Refusal> {
            NTFSRunMap.build(e, clusterSize: 4096, dataSize: data, initializedSize: initialized, deviceSize: device)
        }
        let hole = Int64(LCN_HOLE.rawValue)
        // Good: adjacent runs merge, a hole stays a hole, the map stops at initialized_size.
        guard case .success(let map) = make([(0, 10, 1), (1, 11, 1), (2, hole, 1), (3, 40, 1)]) else { Issue.record("refused"); return }
        #expect(map.runs == [.init(start: 0, length: 8192, deviceOffset: 40960), .init(start: 8192, length: 4096, deviceOffset: nil),
                             .init(start: 12288, length: 4096, deviceOffset: 163_840)])
        guard case .success(let short) = make([(0, 10, 4)], data: 16384, initialized: 5000) else { Issue.record("refused"); return }
        #expect(short.runs == [.init(start: 0, length: 5000, deviceOffset: 40960)])
        // A run that starts past the device but is needed only past initialized_size is not read.
        #expect((try? make([(0, 10, 1), (1, 1 << 40, 3)], initialized: 4096).get()) != nil)
        #expect(make([(1, 10, 4)]) == .failure(.badRunlist))                          // does not start at VCN 0
        #expect(make([(0, 10, 1), (2, 11, 3)]) == .failure(.badRunlist))              // a gap
        #expect(make([(0, 10, 2), (1, 11, 3)]) == .failure(.badRunlist))              // an overlap
        #expect(make([(0, 10, 0), (0, 11, 4)]) == .failure(.badRunlist))              // an empty run
        #expect(make([(0, 10, -4)]) == .failure(.badRunlist))                         // a negative length
        #expect(make([(0, -2, 4)]) == .failure(.badRunlist))                          // LCN_RL_NOT_MAPPED
        #expect(make([(0, -3, 4)]) == .failure(.badRunlist))                          // LCN_ENOENT
        #expect(make([(0, 255, 4)]) == .failure(.badRunlist))                         // past the device
        #expect(make([(0, Int64.max / 2, 4)]) == .failure(.badRunlist))               // LCN × cluster overflows
        #expect(make([(0, 10, Int64.max)]) == .failure(.badRunlist))                  // length × cluster overflows
        #expect(make([(0, 10, 2), (2, 10, Int64.max)]) == .failure(.badRunlist))      // VCN + length overflows
        #expect(make([(0, 10, 2)]) == .failure(.badRunlist))                          // ends before initialized_size
        #expect(make([]) == .failure(.badRunlist))
        #expect(make([(0, 10, 4)], data: 100, initialized: 200) == .failure(.sizes))
        // Zero-length data or nothing initialized needs no runlist at all.
        #expect((try? make([], data: 0, initialized: 0).get())?.runs == [])
        let many = (0 ..< Int64(NTFSRunMap.maxRuns + 1)).map { E($0, ($0 % 2 == 0) ? $0 : hole, 1) }
        #expect(make(many, data: UInt64(many.count) * 4096, initialized: UInt64(many.count) * 4096, device: 1 << 40) == .failure(.tooManyRuns))
    }

    /// A read the device fails is an error naming the record and the offset, not zeros.
    @Test func deviceErrorsAreTyped() throws {
        let failing = DiskTests.FailingDevice(size: 1 << 20)
        guard case .success(let map) = NTFSRunMap.build([(0, 10, 4)], clusterSize: 4096, dataSize: 16384, initializedSize: 16384,
                                                         deviceSize: failing.size) else { Issue.record("refused"); return }
        var buffer = [UInt8](repeating: 0, count: 100)
        do {
            _ = try buffer.withUnsafeMutableBytes { try map.read(failing, node: 77, into: $0, at: 5000) }
            Issue.record("no error")
        } catch let error as ImageError {
            #expect(error.offset == 40960 + 5000 && error.structure?.contains("MFT record 77") == true, "\(error)")
        }
    }
}
