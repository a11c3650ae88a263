import Foundation
import SystemPackage
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

/// Damaged images, made by patching bytes of real ones: each must give a clear error (at open, or
/// EIO for the damaged range with the rest readable), never a crash, a hang or a huge allocation.
@Suite struct Qcow2CorruptionTests {
    /// A private copy of a fixture image, with helpers to read and patch big-endian fields.
    final class Damaged {
        let dir: TempDir
        let path: String
        let logged = Locked<[String]>([])
        init(_ fixture: String) throws {
            dir = try TempDir("imagemount-qcow2-bad")
            path = dir.file(fixture)
            try FileManager.default.copyItem(atPath: try Qcow2Fixtures.get().path(fixture), toPath: path)
        }
        var fileSize: UInt64 { UInt64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) }
        func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
            try RawImage(path: path, writable: false).readBytes(at: offset, count: count)
        }
        func u32(_ offset: UInt64) throws -> UInt32 { try bytes(at: offset, count: 4).reduce(0) { $0 << 8 | UInt32($1) } }
        func u64(_ offset: UInt64) throws -> UInt64 { try bytes(at: offset, count: 8).reduce(0) { $0 << 8 | UInt64($1) } }
        func patch(_ offset: UInt64, _ bytes: [UInt8]) throws {
            try RawImage(path: path, writable: true).writeBytes(bytes, at: offset)
        }
        func patch32(_ offset: UInt64, _ value: UInt32) throws { try patch(offset, (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }) }
        func patch64(_ offset: UInt64, _ value: UInt64) throws { try patch(offset, (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }) }
        func open() throws -> any BlockDevice {
            let log = logged
            return try ImageOpener.open(path: path, options: ImageOpenOptions(corruptionLog: { line in log.withValue { $0.append(line) } }))
        }
        // Header fields (qcow2 spec, "Header").
        var clusterSize: Int { get throws { 1 << Int(try u32(20)) } }
        var l1Offset: UInt64 { get throws { try u64(40) } }
        /// Host offset of the L2 table that L1 entry `index` points to.
        func l2Offset(_ index: Int) throws -> UInt64 { try u64(l1Offset + UInt64(8 * index)) & 0x00FF_FFFF_FFFF_FE00 }
    }

    /// Expects `body` to throw an `ImageError` whose text contains every one of `words`.
    static func expectError(_ words: [String], errno: Errno? = nil, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error mentioning \(words)")
        } catch let e as ImageError {
            for w in words { #expect(e.description.contains(w), "'\(e.description)' lacks '\(w)'") }
            if let errno { #expect(e.errno == errno, "\(e.description): errno \(e.errno)") }
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func l1TableOffsetPastTheEndOrUnaligned() throws {
        let past = try Damaged("v3-64k.qcow2")
        try past.patch64(40, (past.fileSize + (1 << 30)) & ~0xFFFF)
        Self.expectError(["L1 table", "past the end"]) { _ = try past.open() }
        let unaligned = try Damaged("v3-64k.qcow2")
        try unaligned.patch64(40, try unaligned.l1Offset + 8)
        Self.expectError(["L1 table", "not cluster-aligned"]) { _ = try unaligned.open() }
    }

    @Test func hugeL1SizeIsRefusedBeforeAllocating() throws {
        let d = try Damaged("v3-64k.qcow2")
        try d.patch32(36, 0x8000_0000)
        Self.expectError(["L1 table", "exceed the limit"]) { _ = try d.open() }
    }

    @Test func refcountTableOffsetPastTheEndOrUnaligned() throws {
        let past = try Damaged("v3-4k.qcow2")
        try past.patch64(48, (past.fileSize + (1 << 30)) & ~0xFFF)
        Self.expectError(["refcount table", "past the end"]) { _ = try past.open() }
        let unaligned = try Damaged("v3-4k.qcow2")
        try unaligned.patch64(48, try unaligned.u64(48) + 512)
        Self.expectError(["refcount table", "not cluster-aligned"]) { _ = try unaligned.open() }
    }

    @Test func l2TableOffsetPastTheEndFailsOnlyItsRange() throws {
        // 4 KiB clusters: each L2 table maps 2 MiB, so L1 entry 1 covers [2 MiB, 4 MiB).
        let d = try Damaged("v3-4k.qcow2")
        let expected = try Qcow2Fixtures.get().oracle("v3-4k.qcow2")
        try d.patch64(try d.l1Offset + 8, 1 << 63 | ((d.fileSize + (1 << 24)) & ~0xFFF))
        let image = try d.open()
        Self.expectError(["L2 table", "past the end"], errno: .ioError) { _ = try image.readBytes(at: 2 << 20, count: 4096) }
        Self.expectError(["L2 table"], errno: .ioError) { _ = try image.readBytes(at: (2 << 20) + 8192, count: 100) }
        #expect(try image.readBytes(at: 0, count: 65536)[...] == expected[0..<65536])
        #expect(try image.readBytes(at: 4 << 20, count: 65536)[...] == expected[(4 << 20)..<((4 << 20) + 65536)])
        #expect(d.logged.value.count == 1, "corruption is logged once per image")
        #expect((image as? Qcow2Image)?.corruptionEvent?.structure == "L2 table")
    }

    @Test func l2TableOffsetUnalignedOrInTheHeader() throws {
        let d = try Damaged("v3-4k.qcow2")
        try d.patch64(try d.l1Offset, 1 << 63 | 0x200)
        let image = try d.open()
        Self.expectError(["L2 table", "not cluster-aligned"], errno: .ioError) { _ = try image.readBytes(at: 0, count: 10) }
        #expect(try image.readBytes(at: 3 << 20, count: 10).count == 10)
    }

    @Test func l2EntryPointingIntoTheHeader() throws {
        let d = try Damaged("v3-4k.qcow2")
        let expected = try Qcow2Fixtures.get().oracle("v3-4k.qcow2")
        let l2 = try d.l2Offset(0)
        try d.patch64(l2, 1 << 63 | 0x200)              // guest cluster 0: data at 0x200, in the header
        try d.patch64(l2 + 8, 1 << 62 | 0x40)           // guest cluster 1: compressed data at 0x40
        let image = try d.open()
        Self.expectError(["L2 entry", "not aligned"], errno: .ioError) { _ = try image.readBytes(at: 0, count: 4096) }
        Self.expectError(["L2 entry", "outside the data area"], errno: .ioError) { _ = try image.readBytes(at: 4096, count: 1) }
        #expect(try image.readBytes(at: 8192, count: 8192)[...] == expected[8192..<16384])
    }

    /// The host offset of the first compressed cluster (and its guest offset) found in L2 table 0.
    static func firstCompressed(_ d: Damaged) throws -> (host: UInt64, guest: UInt64) {
        let l2 = try d.l2Offset(0), cs = try d.clusterSize
        for i in 0..<(cs / 8) {
            let e = try d.u64(l2 + UInt64(8 * i))
            if e & (1 << 62) != 0 {
                let bits = 62 - (Int(try d.u32(20)) - 8)
                return (e & ((1 << UInt64(bits)) - 1), UInt64(i * cs))
            }
        }
        throw ImageError(reason: "no compressed cluster in \(d.path)")
    }

    @Test("compressed data that does not decompress", arguments: ["zlib-64k.qcow2", "zstd-64k.qcow2"])
    func compressedDataThatDoesNotInflate(_ name: String) throws {
        let d = try Damaged(name)
        let expected = try Qcow2Fixtures.get().oracle(name)
        let (host, guest) = try Self.firstCompressed(d)
        try d.patch(host, [UInt8](repeating: 0xFF, count: 64))
        let image = try d.open()
        Self.expectError(["compressed cluster", "does not decompress"], errno: .ioError) {
            _ = try image.readBytes(at: guest + 10, count: 100)
        }
        // A large read over it (decompressed on the pool) fails too, and cleanly.
        Self.expectError(["does not decompress"], errno: .ioError) { _ = try image.readBytes(at: 0, count: 4 << 20) }
        // Everything else still reads.
        let after = Int(guest) + 65536
        #expect(try image.readBytes(at: UInt64(after), count: 200_000)[...] == expected[after..<(after + 200_000)])
    }

    @Test func backingFileLoopsAreRefused() throws {
        let dir = try TempDir("imagemount-qcow2-loop")
        try Shell.check("""
            cd \(Shell.quote(dir.path)) && qemu-img create -q -f qcow2 a.qcow2 1M && \
            qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2 && \
            qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2 && \
            qemu-img create -q -f qcow2 self.qcow2 1M && qemu-img rebase -u -b self.qcow2 -F qcow2 self.qcow2
            """)
        Self.expectError(["loops back", "a.qcow2"], errno: .tooManySymbolicLinkLevels) {
            _ = try ImageOpener.open(path: dir.file("a.qcow2"), format: nil, writable: false)
        }
        Self.expectError(["loops back", "self.qcow2"]) { _ = try ImageOpener.open(path: dir.file("self.qcow2"), format: nil, writable: false) }
    }

    @Test func backingChainsDeeperThan64AreRefused() throws {
        let dir = try TempDir("imagemount-qcow2-deep")
        // f0 → f1 → ... → f65 (raw): 66 images; f2 → ... → f65 is 64 images and opens.
        try Shell.check("""
            cd \(Shell.quote(dir.path)) && : > f65 && truncate -s 1M f65 && \
            for i in $(seq 0 64); do qemu-img create -q -f qcow2 -u -b f$((i+1)) -F $([ $i = 64 ] && echo raw || echo qcow2) f$i 1M; done
            """)
        // Named without an extension, so the format is given (the probing policy).
        Self.expectError(["deeper than 64"]) { _ = try ImageOpener.open(path: dir.file("f0"), format: .qcow2, writable: false) }
        let ok = try ImageOpener.open(path: dir.file("f2"), format: .qcow2, writable: false)
        #expect(try ok.readBytes(at: 0, count: 16) == [UInt8](repeating: 0, count: 16))
    }

    /// The offset of the feature name table's data (qcow2 spec, "Header extensions").
    static func featureTable(_ d: Damaged) throws -> UInt64 {
        var pos = UInt64(try d.u32(100))
        while true {
            let type = try d.u32(pos), length = UInt64(try d.u32(pos + 4))
            if type == 0x6803_F857 { return pos + 8 }
            guard type != 0 else { throw ImageError(reason: "no feature table") }
            pos += 8 + (length + 7) & ~7
        }
    }

    @Test func unknownIncompatibleFeaturesAreRefusedByName() throws {
        let named = try Damaged("v3-64k.qcow2")
        let table = try Self.featureTable(named)
        try named.patch(table, [0, 20] + Array("fancy feature".utf8) + [0])
        try named.patch64(72, try named.u64(72) | 1 << 20)
        Self.expectError(["unsupported incompatible feature", "fancy feature"], errno: .notSupported) { _ = try named.open() }
        let unnamed = try Damaged("v3-64k.qcow2")
        try unnamed.patch64(72, try unnamed.u64(72) | 1 << 33)
        Self.expectError(["unknown feature bit 33"], errno: .notSupported) { _ = try unnamed.open() }
    }

    @Test func dirtyAndCorruptImagesStillRead() throws {
        let d = try Damaged("v3-64k.qcow2")
        try d.patch64(72, try d.u64(72) | 0b11)
        let image = try #require(try d.open() as? Qcow2Image)
        #expect(image.metadata.header.incompatible.isSuperset(of: [.dirty, .corrupt]))
        #expect(try image.readBytes(at: 0, count: Int(image.size)) == (try Qcow2Fixtures.get().oracle("v3-64k.qcow2")))
    }

    @Test func badHeaderFieldsAreRefused() throws {
        let bits = try Damaged("v3-64k.qcow2")
        try bits.patch32(20, 30)
        Self.expectError(["cluster_bits 30"]) { _ = try bits.open() }
        let version = try Damaged("v3-64k.qcow2")
        try version.patch32(4, 7)
        Self.expectError(["version 7"]) { _ = try version.open() }
        let snapshots = try Damaged("snap.qcow2")
        try snapshots.patch32(60, 1_000_000)
        Self.expectError(["snapshot table", "more than the limit"]) { _ = try snapshots.open() }
        let backing = try Damaged("mid.qcow2")
        try backing.patch32(16, 5000)
        Self.expectError(["backing file name"]) { _ = try backing.open() }
        let truncated = try Damaged("v3-64k.qcow2")
        try Shell.check("truncate -s 50 \(Shell.quote(truncated.path))")
        Self.expectError(["shorter than a qcow2 header"]) { _ = try truncated.open() }
    }
}
