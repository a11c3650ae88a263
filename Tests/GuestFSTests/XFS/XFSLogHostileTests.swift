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
import TestSupport

/// Hostile logs: a real dirty log from the kernel, mutated where recovery reads (record
/// headers, op headers, item formats, logged regions), with the record CRCs stamped again so
/// the damage gets past the CRC check into reassembly and replay. Each run must end in a
/// result or an ImageError: no trap, no hang, memory within the overlay's cap.
@Suite(.serialized) struct XFSLogHostileTests {
    struct Fixture {
        var bytes: [UInt8]
        var layout: XFSLogLayout
        var records: [XFSLogRecordHeader]
    }

    static let fixture: Result<Fixture, any Error> = Result {
        let dir = try TempDir("xfs-log-hostile")
        let image = dir.file("small.img")
        try Shell.check("truncate -s 24M \(image) && TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f -l size=1368b \(image)")
        let mnt = dir.file("m")
        try Shell.check("mkdir -p \(mnt) && mount -o loop \(image) \(mnt)")
        _ = try Shell.run("""
            cd \(mnt) && mkdir a b && for i in $(seq 1 80); do echo $i > a/f$i; done && sync &&
            dd if=/dev/urandom of=b/data bs=4k count=40 status=none && sync && mv a/f1 b/ && sync && rm a/f2 a/f3 &&
            sync && setfattr -n user.x -v y a/f4 && sync && ln -s target a/l && sync && mkdir c && rmdir c &&
            sync && rm b/data && for i in $(seq 1 30); do setfattr -n user.n$i -v $i a/f5; sync; done
            """)
        try Shell.check("xfs_io -x -c 'shutdown -f' \(mnt); umount \(mnt)")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let device = FuzzDevice(bytes: bytes, name: "fixture")
        let sb = Array(bytes[0 ..< 512])
        let layout = try XFSLogLayout.parse(superblock: sb, geometry: try XFSLogTest.geometry(sb), deviceSize: device.size)
        let reader = XFSLogReader(device: device, layout: layout)
        let ends = try #require(try reader.findEnds())
        var records: [XFSLogRecordHeader] = []
        var block = ends.tail
        while block != ends.head, records.count < 10_000 {
            let r = try XFSLogRecordHeader(try reader.read(block, count: 1), block: block, layout: layout, structureOffset: 0)
            records.append(r)
            block = layout.wrap(UInt64(block) + UInt64(r.totalBlocks))
        }
        return Fixture(bytes: bytes, layout: layout, records: records)
    }

    /// Stamps a fresh CRC on every record of `bytes` (mutated in place).
    static func restamp(_ bytes: inout [UInt8], _ f: Fixture) {
        for r in f.records {
            let at = Int(f.layout.byteOffset(r.block))
            guard let header = try? XFSLogRecordHeader(Array(bytes[at ..< at + 512]), block: r.block, layout: f.layout,
                                                       structureOffset: 0) else { continue }
            let device = FuzzDevice(bytes: bytes, name: "restamp")
            guard let (ext, data) = try? XFSLogReader(device: device, layout: f.layout).readRecord(header) else { continue }
            let crc = header.computeCRC(extendedHeaders: ext, data: data)
            for i in 0 ..< 4 { bytes[at + 32 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        }
    }

    @Test func theUnmutatedFixtureRecovers() throws {
        let f = try Self.fixture.get()
        #expect(f.records.count > 2)
        let device = FuzzDevice(bytes: f.bytes, name: "fixture")
        let sb = Array(f.bytes[0 ..< 512])
        let result = try #require(try XFSLogRecovery.recover(device: device, superblock: sb, geometry: try XFSLogTest.geometry(sb)))
        #expect(result.report.inodesReplayed > 0)
        // Restamping an unchanged log changes nothing.
        var same = f.bytes
        Self.restamp(&same, f)
        #expect(same == f.bytes)
    }

    @Test func mutatedRecordsNeverTrap() throws {
        let f = try Self.fixture.get()
        var rng = SplitMix64(seed: 0x0DF5_106)
        var outcomes: [String: Int] = [:]
        // A hang shows as one slow round; the total depends on the machine's load.
        var slowest = 0.0
        for round in 0 ..< 160 {
            let start = Date()
            defer { slowest = max(slowest, Date().timeIntervalSince(start)) }
            var bytes = f.bytes
            let record = f.records[Int(rng.next() % UInt64(f.records.count))]
            let first = Int(f.layout.byteOffset(record.block))
            let span = record.totalBlocks * 512
            for _ in 0 ..< 1 + Int(rng.next() % 4) {
                // Mostly the first bytes of the record's data (op headers, item formats), some
                // anywhere in it, some in its header.
                let o: Int
                switch rng.next() % 4 {
                case 0: o = Int(rng.next() % 512)
                case 1: o = record.headerBlocks * 512 + Int(rng.next() % UInt64(min(span - record.headerBlocks * 512, 256)))
                default: o = Int(rng.next() % UInt64(span))
                }
                bytes[first + o] = rng.next() % 3 == 0 ? 0xFF : UInt8(truncatingIfNeeded: rng.next())
            }
            if round % 4 != 0 { Self.restamp(&bytes, f) }
            let device = FuzzDevice(bytes: bytes, name: "mutant")
            let sb = Array(bytes[0 ..< 512])
            do {
                let result = try XFSLogRecovery.recover(device: device, superblock: sb, geometry: try XFSLogTest.geometry(sb))
                #expect((result?.overlay.bytesInMemory ?? 0) <= XFSLogRecovery.maxOverlayBytes)
                outcomes[result == nil ? "clean" : "recovered", default: 0] += 1
            } catch let e as ImageError {
                outcomes[String(e.reason.prefix(30)), default: 0] += 1
            }
            FuzzHarness.xfsLog(bytes)
        }
        #expect(slowest < 20, "the slowest mutant took \(slowest) s")
        // The mutations must reach past the CRC check into replay, or this test proves little.
        #expect(outcomes.count > 5, "\(outcomes)")
    }
}
