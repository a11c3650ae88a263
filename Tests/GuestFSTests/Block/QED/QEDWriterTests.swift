import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Writing QED images (QEDImage+Write.swift) against qemu-img: random writes against a raw model
/// (`qemu-img compare`, `qemu-img check` clean), over a backing file that stays as it was,
/// SIGKILL at random points, the need-check flag, damaged tables refused.
@Suite(.serialized) struct QEDWriterTests {
    static func image(_ dir: TempDir, _ options: String = "") throws -> String {
        let raw = dir.file("src.raw"), image = dir.file("disk.qed")
        try FormatWriteModel.sourceRaw(raw, megabytes: 40, seed: 9)
        try Shell.check("qemu-img convert -O qed \(options) \(Shell.quote(raw)) \(Shell.quote(image))")
        return image
    }

    static func needCheck(_ image: String) throws -> Bool {
        try RawImage(path: image, writable: false).readBytes(at: 16, count: 1)[0] & UInt8(QEDFormat.needCheck) != 0
    }

    @Test func randomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-qed")
        let image = try Self.image(dir)
        try FormatWriteModel.model(image, format: .qed, block: 65536, ops: 500, seed: 1, qemuChecks: true)
        #expect(try !Self.needCheck(image))
    }

    /// Small clusters and one-cluster... two-cluster tables: many L2 tables get allocated.
    @Test func smallClustersManyTables() throws {
        let dir = try TempDir("fmtw-qed")
        let image = try Self.image(dir, "-o cluster_size=4096,table_size=2")
        try FormatWriteModel.model(image, format: .qed, block: 4096, ops: 400, seed: 2, qemuChecks: true)
    }

    @Test func overABackingFileThatStaysAsItWas() throws {
        let dir = try TempDir("fmtw-qed")
        let back = dir.file("back.raw"), image = dir.file("top.qed")
        try FormatWriteModel.sourceRaw(back, megabytes: 24, seed: 10)
        try Shell.check("qemu-img create -q -f qed -b back.raw -F raw \(Shell.quote(image)) && qemu-io -f qed -c 'write -P 7 1M 300k' \(Shell.quote(image)) >/dev/null")
        try FormatWriteModel.model(image, format: .qed, block: 65536, ops: 400, seed: 3, qemuChecks: true, unchanged: [back])
    }

    @Test func killedWriterLeavesNoCorruption() throws {
        let dir = try TempDir("fmtw-qed")
        try FormatWriteModel.crash(try Self.image(dir), format: .qed, block: 65536, rounds: 8, seed: 4, qemuChecks: true)
    }

    /// Set while allocations are not yet flushed, clear after the flush and after close.
    @Test func needCheckFlagWhileAllocating() throws {
        let dir = try TempDir("fmtw-qed")
        let image = dir.file("empty.qed")
        try Shell.check("qemu-img create -q -f qed \(Shell.quote(image)) 8M")
        let device = try ImageOpener.open(path: image, format: .qed, writable: true)
        #expect(try !Self.needCheck(image))
        try device.writeBytes([1, 2, 3], at: 5000)
        #expect(try Self.needCheck(image))
        try device.flush()
        #expect(try !Self.needCheck(image))
        try device.writeBytes([4], at: 3 << 20)
        #expect(try Self.needCheck(image))
        let r = try Shell.run("qemu-img check -f qed -U \(Shell.quote(image))")
        #expect(r.status == 0 || r.status == 3, "\(r.text) \(r.stderr)")
    }

    /// An L2 entry pointing at the L1 table is not written through.
    @Test func damagedTableIsNotWritten() throws {
        let dir = try TempDir("fmtw-qed")
        let image = try Self.image(dir)
        let q = try ImageOpener.open(path: image, format: .qed, writable: false) as! QEDImage
        let h = q.metadata.header
        guard let l2 = try q.l2Table(0) else { Issue.record("no L2 table"); return }
        try RawImage(path: image, writable: true).writeBytes((0 ..< 8).map { UInt8(truncatingIfNeeded: h.l1TableOffset >> (8 * UInt64($0))) }, at: l2 + 8 * 5)
        let sum = try FormatWriteModel.sha(image)
        VHDCorruptionTests.expectError(["corrupt table entries", "qemu-img check -r all"]) {
            _ = try ImageOpener.open(path: image, format: .qed, writable: true)
        }
        #expect(try FormatWriteModel.sha(image) == sum)
    }
}
