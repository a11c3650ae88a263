import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Dirty VHDX logs ([MS-VHDX] "2.3"), as a crash leaves them: entries written by the test into
/// the log of a qemu-img image (the layout QEMU's vhdx_log_write makes: header, descriptors,
/// data sectors, CRC-32C over the entry), the header's log GUID set. The oracle is QEMU's own
/// replay: `qemu-img check -r all` on a copy, then `qemu-img convert -O raw`. imagemount
/// replays in memory on a read-only open and must read those bytes, leaving the file as it was.
@Suite struct VHDXLogTests {
    typealias Damaged = VHDXImageTests.Damaged
    static let guid: [UInt8] = (0 ..< 16).map { UInt8(0xA0 + $0) }

    enum Write {
        case data(UInt64, [UInt8])
        case zero(UInt64, UInt64)
    }

    static func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0 ..< n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// One log entry with `writes` (4 KiB data sectors and zero runs), as QEMU lays it out.
    static func entry(sequence: UInt64, writes: [Write], flushed: UInt64, last: UInt64, guid: [UInt8] = guid) -> [UInt8] {
        let dataCount = writes.filter { if case .data = $0 { return true } else { return false } }.count
        let descriptorSectors = (writes.count + 2 + 127) / 128
        let length = (descriptorSectors + dataCount) * 4096
        var e = [UInt8](repeating: 0, count: length)
        func put(_ at: Int, _ b: [UInt8]) { e.replaceSubrange(at ..< at + b.count, with: b) }
        put(0, Array("loge".utf8))
        put(8, le(UInt64(length), 4))
        put(16, le(sequence, 8))
        put(24, le(UInt64(writes.count), 4))
        put(32, guid)
        put(48, le(flushed, 8))
        put(56, le(last, 8))
        var data = descriptorSectors
        for (i, w) in writes.enumerated() {
            let d = 64 + 32 * i
            switch w {
            case .data(let offset, let bytes):
                put(d, Array("desc".utf8))
                put(d + 4, Array(bytes[4092 ..< 4096]))
                put(d + 8, Array(bytes[0 ..< 8]))
                put(d + 16, le(offset, 8))
                put(d + 24, le(sequence, 8))
                let s = data * 4096
                put(s, Array("data".utf8))
                put(s + 4, le(sequence >> 32, 4))
                put(s + 8, Array(bytes[8 ..< 4092]))
                put(s + 4092, le(sequence & 0xFFFF_FFFF, 4))
                data += 1
            case .zero(let offset, let count):
                put(d, Array("zero".utf8))
                put(d + 8, le(count, 8))
                put(d + 16, le(offset, 8))
                put(d + 24, le(sequence, 8))
            }
        }
        put(4, le(UInt64(VHDXFormat.crc32c(e, checksumAt: 4)), 4))
        return e
    }

    /// A copy of the 1 MiB-block fixture, its log's place, and the first fully present block.
    struct Dirty {
        let d: Damaged
        let logOffset: UInt64
        let block: UInt64
        let bat: UInt64
        let fileSize: UInt64

        init() throws {
            d = try Damaged("vhdx-1m.vhdx")
            let header = try VHDXMetadata.currentHeader(of: RawImage(path: d.path, writable: false))
            logOffset = header.logOffset
            (bat, _) = try d.region(VHDXFormat.batRegion)
            var found: UInt64?
            for i in 0 ..< 8 where found == nil {
                let entry = try d.u64(bat + UInt64(8 * i))
                if entry & 7 == 6 { found = (entry >> 20) << 20 }
            }
            block = try #require(found)
            fileSize = UInt64(try FileManager.default.attributesOfItem(atPath: d.path)[.size] as! Int)
        }

        /// Writes `entries` one after another from the log's start and sets the log GUID.
        func dirty(_ entries: [[UInt8]], at sector: Int = 0) throws {
            try d.patch(logOffset + UInt64(sector * 4096), entries.flatMap { $0 })
            for at: UInt64 in [64 * 1024, 128 * 1024] {
                try d.patch(at + 48, VHDXLogTests.guid)
                try d.restamp(at, size: 4096)
            }
        }

        /// What QEMU reads after replaying the log of a copy (`qemu-img check -r all`).
        func qemuReplayed() throws -> [UInt8] {
            let copy = d.dir.file("replayed.vhdx"), raw = d.dir.file("replayed.raw")
            try? FileManager.default.removeItem(atPath: copy)
            try FileManager.default.copyItem(atPath: d.path, toPath: copy)
            _ = try? Shell.check("qemu-img check -q -r all -f vhdx \(Shell.quote(copy))")
            try Shell.check("qemu-img convert -f vhdx -O raw \(Shell.quote(copy)) \(Shell.quote(raw))")
            return Array(try Data(contentsOf: URL(fileURLWithPath: raw)))
        }

        func sha() throws -> String { try Shell.check("sha256sum \(Shell.quote(d.path)) | cut -c1-64") }
    }

    /// Two consecutive entries (the second rewrites a sector the first wrote, and zeroes a
    /// run) and a BAT update that turns block 3 into a zero block: read as QEMU's replay
    /// leaves them, the file unchanged, and the updates are really in the log (not in place).
    @Test func replayedInMemoryAsQEMUReplaysIt() throws {
        let t = try Dirty()
        let original = try FormatFixtures.get().oracle("vhdx-1m.vhdx")
        var batSector = try t.d.bytes(t.bat, 4096)
        batSector.replaceSubrange(24 ..< 32, with: Self.le(2, 8))   // block 3: PAYLOAD_BLOCK_ZERO
        let first = Self.entry(sequence: 7, writes: [.data(t.block + 8192, [UInt8](repeating: 0x5A, count: 4096)),
                                                    .data(t.bat, batSector)],
                               flushed: t.fileSize, last: t.fileSize)
        let second = Self.entry(sequence: 8, writes: [.data(t.block + 8192, (0 ..< 4096).map { UInt8(truncatingIfNeeded: $0 * 7) }),
                                                     .zero(t.block + 16384, 8192)],
                                flushed: t.fileSize, last: t.fileSize)
        try t.dirty([first, second])
        let before = try t.sha()
        let expected = try t.qemuReplayed()
        #expect(expected != original, "the log changes what the disk reads")
        #expect(Array(expected[(3 << 20) ..< (4 << 20)]).allSatisfy { $0 == 0 })

        let device = try t.d.open()
        try Qcow2ImageTests.compare(device, with: expected, unit: 1 << 20, label: "replayed")
        // info works too (qemu-img info refuses the file), from the replayed metadata.
        let info = try ImageInfo.gather(path: t.d.path)
        #expect(info.first?.virtualSize == UInt64(expected.count))
        #expect(try t.sha() == before)
    }

    /// The active sequence is the one with the highest sequence number: an older sequence
    /// elsewhere in the log is not replayed; an entry whose CRC is wrong ends its sequence.
    @Test func onlyTheActiveSequenceCounts() throws {
        let t = try Dirty()
        let old = Self.entry(sequence: 3, writes: [.data(t.block, [UInt8](repeating: 0x11, count: 4096))], flushed: t.fileSize, last: t.fileSize)
        let newer = Self.entry(sequence: 20, writes: [.data(t.block + 4096, [UInt8](repeating: 0x22, count: 4096))], flushed: t.fileSize, last: t.fileSize)
        var broken = Self.entry(sequence: 21, writes: [.data(t.block + 4096, [UInt8](repeating: 0x33, count: 4096))], flushed: t.fileSize, last: t.fileSize)
        broken[5000] ^= 0xFF
        try t.dirty([old])
        try t.dirty([newer, broken], at: 40)
        let expected = try t.qemuReplayed()
        let device = try t.d.open()
        try Qcow2ImageTests.compare(device, with: expected, unit: 1 << 20, label: "active")
        let (sequence, updates) = try #require(try VHDXLog.activeSequence(in: RawImage(path: t.d.path, writable: false),
                                                                            header: VHDXMetadata.currentHeader(of: RawImage(path: t.d.path, writable: false)))
            .map { ($0.entries, $0.updates) })
        #expect(sequence == 1)
        #expect(updates == [.data(offset: t.block + 4096, bytes: [UInt8](repeating: 0x22, count: 4096))])
    }

    /// A log GUID with no valid entry (or entries of another GUID) is an empty log, as
    /// [MS-VHDX] and QEMU treat it: the file reads as it is.
    @Test func aLogGUIDWithoutEntriesReadsAsIs() throws {
        let t = try Dirty()
        let foreign = Self.entry(sequence: 9, writes: [.data(t.block, [UInt8](repeating: 0x44, count: 4096))],
                                 flushed: t.fileSize, last: t.fileSize, guid: [UInt8](repeating: 0x99, count: 16))
        try t.dirty([foreign])
        try Qcow2ImageTests.compare(try t.d.open(), with: try FormatFixtures.get().oracle("vhdx-1m.vhdx"), unit: 1 << 20, label: "empty log")
    }

    /// Hostile logs: a file shorter than the log says it was (truncated after the crash), a log
    /// region outside the file or too large, each one line; nothing is written.
    @Test func hostileLogs() throws {
        let t = try Dirty()
        let truncated = Self.entry(sequence: 2, writes: [.data(t.block, [UInt8](repeating: 0x55, count: 4096))],
                                   flushed: t.fileSize + (1 << 20), last: t.fileSize + (1 << 20))
        try t.dirty([truncated])
        let before = try t.sha()
        VHDCorruptionTests.expectError(["VHDX log", "truncated"]) { _ = try t.d.open() }
        #expect(try t.sha() == before)

        // A log that grew the file (LastFileOffset past its end) reads zeros there.
        let grown = Self.entry(sequence: 2, writes: [.data(t.fileSize + 4096, [UInt8](repeating: 0x66, count: 4096))],
                               flushed: t.fileSize, last: t.fileSize + (2 << 20))
        try t.dirty([grown])
        try Qcow2ImageTests.compare(try t.d.open(), with: try t.qemuReplayed(), unit: 1 << 20, label: "grown")

        for at: UInt64 in [64 * 1024, 128 * 1024] {
            try t.d.patch32(at + 68, 64 << 20)          // log length: 64 MiB
            try t.d.restamp(at, size: 4096)
        }
        VHDCorruptionTests.expectError(["VHDX log"]) { _ = try t.d.open() }
        for at: UInt64 in [64 * 1024, 128 * 1024] {
            try t.d.patch32(at + 68, 1 << 20)
            try t.d.patch64(at + 72, 0x7FFF_FFFF_FFF0_0000)   // log offset far past the end
            try t.d.restamp(at, size: 4096)
        }
        VHDCorruptionTests.expectError(["VHDX log", "past the end"]) { _ = try t.d.open() }
        for at: UInt64 in [64 * 1024, 128 * 1024] {
            try t.d.patch64(at + 72, (1 << 20) + 512)          // not 1 MiB aligned
            try t.d.restamp(at, size: 4096)
        }
        VHDCorruptionTests.expectError(["VHDX log", "aligned"]) { _ = try t.d.open() }
    }
}
