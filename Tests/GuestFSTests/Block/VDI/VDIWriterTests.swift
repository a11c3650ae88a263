import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Writing VDI images (VDIImage+Write.swift) against qemu-img: dynamic and static images made by
/// qemu-img, random writes against a raw model, SIGKILL at random points, damaged maps refused.
@Suite(.serialized) struct VDIWriterTests {
    static let block = Int(VDIFormat.blockSize)

    /// A 40 MiB disk with scattered data, converted to VDI with `options`.
    static func image(_ dir: TempDir, _ options: String = "") throws -> String {
        let raw = dir.file("src.raw"), image = dir.file("disk.vdi")
        try FormatWriteModel.sourceRaw(raw, megabytes: 40, seed: 7)
        try Shell.check("qemu-img convert -O vdi \(options) \(Shell.quote(raw)) \(Shell.quote(image))")
        return image
    }

    @Test func dynamicRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-vdi")
        try FormatWriteModel.model(try Self.image(dir), format: .vdi, block: Self.block, ops: 600, seed: 1, qemuChecks: true)
    }

    @Test func emptyDynamicImage() throws {
        let dir = try TempDir("fmtw-vdi")
        let image = dir.file("empty.vdi")
        try Shell.check("qemu-img create -q -f vdi \(Shell.quote(image)) 33M")
        try FormatWriteModel.model(image, format: .vdi, block: Self.block, ops: 400, seed: 2, qemuChecks: true)
    }

    @Test func staticRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-vdi")
        let image = try Self.image(dir, "-o static=on")
        let before = try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int
        try FormatWriteModel.model(image, format: .vdi, block: Self.block, ops: 400, seed: 3, qemuChecks: true)
        // Every block of a static image is allocated: writes never grow it.
        #expect(try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int == before)
    }

    @Test func killedWriterLeavesNoCorruption() throws {
        let dir = try TempDir("fmtw-vdi")
        try FormatWriteModel.crash(try Self.image(dir), format: .vdi, block: Self.block, rounds: 8, seed: 4, qemuChecks: true)
    }

    /// Allocation never takes a block an entry names, whatever the header's count says: a map whose
    /// entries skip blocks (entries 0 and 5 for a count of 2) fills the gaps 1-4 first, then
    /// appends after block 5, and every guest block still fits.
    @Test func allocationSkipsBlocksTheMapNames() throws {
        let dir = try TempDir("fmtw-vdi")
        let image = dir.file("gap.vdi")
        try Shell.check("qemu-img create -q -f vdi \(Shell.quote(image)) 16M")
        let f = try RawImage(path: image, writable: true)
        let h = VDIFormat.Header(try f.readBytes(at: 0, count: 512))
        let data = UInt64(h.offsetData), map = UInt64(h.offsetBlockMap)
        // Guest block 0 -> image block 0, guest block 1 -> image block 5, six blocks in the file.
        try [UInt8](repeating: 0x11, count: Self.block).withUnsafeBytes { try f.writeExtending($0, at: data) }
        try [UInt8](repeating: 0x55, count: Self.block).withUnsafeBytes { try f.writeExtending($0, at: data + 5 * UInt64(Self.block)) }
        try f.writeBytes([0, 0, 0, 0, 5, 0, 0, 0], at: map)
        try f.writeBytes([2, 0, 0, 0], at: 0x184)
        try f.flush()
        try FormatWriteModel.model(image, format: .vdi, block: Self.block, ops: 200, seed: 5, qemuChecks: true)
        let v = try ImageOpener.open(path: image, format: .vdi, writable: false) as! VDIImage
        let used = v.blockMap.filter { $0 < VDIFormat.discarded }
        #expect(Set(used).count == used.count && used.contains(5))
    }

    /// A map with two entries naming one block is not written (qemu-img check calls it corrupt).
    @Test func damagedMapIsNotWritten() throws {
        let dir = try TempDir("fmtw-vdi")
        let image = try Self.image(dir)
        let v = try ImageOpener.open(path: image, format: .vdi, writable: false) as! VDIImage
        guard let first = v.blockMap.firstIndex(where: { $0 < VDIFormat.discarded }),
              let other = v.blockMap.indices.first(where: { $0 != first }) else { Issue.record("no allocated block"); return }
        let entry = v.blockMap[first]
        try RawImage(path: image, writable: true).writeBytes((0 ..< 4).map { UInt8(truncatingIfNeeded: entry >> (8 * UInt32($0))) },
                                                           at: UInt64(v.header.offsetBlockMap) + UInt64(other) * 4)
        let sum = try FormatWriteModel.sha(image)
        let error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: image, format: .vdi, writable: true) }
        #expect(error?.description.contains("block map is damaged") == true, "\(String(describing: error))")
        #expect(try FormatWriteModel.sha(image) == sum)
    }

    /// A count one short (a flush interrupted between map and header) is recounted by a writable
    /// open, and qemu-img check is clean afterwards.
    @Test func countMismatchIsRecounted() throws {
        let dir = try TempDir("fmtw-vdi")
        let image = try Self.image(dir)
        let count = try RawImage(path: image, writable: false).readBytes(at: 0x184, count: 4)
        try RawImage(path: image, writable: true).writeBytes([count[0] &- 1, count[1], count[2], count[3]], at: 0x184)
        #expect(try Shell.run("qemu-img check -f vdi \(Shell.quote(image))").status == 2)
        try ImageOpener.open(path: image, format: .vdi, writable: true).flush()
        let check = try Shell.run("qemu-img check -f vdi \(Shell.quote(image))")
        #expect(check.status == 0, "\(check.text) \(check.stderr)")
    }

    /// Writable opens take QEMU's write lock: a second writer is refused.
    @Test func writableOpenTakesTheImageLock() throws {
        let dir = try TempDir("fmtw-vdi")
        let image = try Self.image(dir)
        let held = try ImageOpener.open(path: image, format: .vdi, writable: true)
        let r = try Shell.run("qemu-io -c 'write 0 512' \(Shell.quote(image)) 2>&1")
        #expect(r.status != 0 && r.text.contains("lock"), "\(r.text)")
        try held.flush()
    }
}
