import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Writing VHD images (VHDImage+Write.swift): dynamic and fixed images made by qemu-img against a
/// raw model (`qemu-img compare`; qemu-img has no check for vpc), SIGKILL at random points, a
/// differencing child written over its parent (which stays as it was), damaged BATs refused.
@Suite(.serialized) struct VHDWriterTests {
    static let block = 2 << 20

    /// A 40 MiB disk with scattered data, converted to VHD with `options`.
    static func image(_ dir: TempDir, _ options: String = "") throws -> String {
        let raw = dir.file("src.raw"), image = dir.file("disk.vhd")
        try FormatWriteModel.sourceRaw(raw, megabytes: 40, seed: 8)
        try Shell.check("qemu-img convert -O vpc \(options) \(Shell.quote(raw)) \(Shell.quote(image))")
        return image
    }

    /// The footer is the last sector of the file and equals the copy at byte 0.
    static func expectFooterAtEnd(_ image: String) throws {
        let f = try RawImage(path: image, writable: false)
        #expect(try f.readBytes(at: f.size - 512, count: 512) == (try f.readBytes(at: 0, count: 512)), "\(image): footer not at the end")
    }

    @Test func dynamicRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-vhd")
        let image = try Self.image(dir)
        try FormatWriteModel.model(image, format: .vpc, block: Self.block, ops: 300, seed: 1, qemuChecks: false)
        try Self.expectFooterAtEnd(image)
    }

    @Test func fixedRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-vhd")
        let image = try Self.image(dir, "-o subformat=fixed")
        let before = try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int
        try FormatWriteModel.model(image, format: .vpc, block: Self.block, ops: 200, seed: 2, qemuChecks: false)
        #expect(try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int == before)
    }

    @Test func killedWriterLeavesNoCorruption() throws {
        let dir = try TempDir("fmtw-vhd")
        let image = try Self.image(dir)
        try FormatWriteModel.crash(image, format: .vpc, block: Self.block, rounds: 8, seed: 3, qemuChecks: false)
    }

    /// A differencing child is written, its parent is not: the child reads as the model (the
    /// merge of parent and child, then the writes), before and after reopening.
    @Test func differencingChildIsWrittenAndItsParentIsNot() throws {
        let chain = try VHDDifferencingTests.Chain()
        let parent = chain.dir.file("parent.vhd")
        let sum = try FormatWriteModel.sha(parent)
        let model = chain.dir.file("model.raw")
        try Data(chain.expected).write(to: URL(fileURLWithPath: model))
        let ops = Qcow2WriterTests.randomOps(count: 300, size: UInt64(chain.expected.count), cluster: Self.block, subcluster: 512, seed: 4)
        do {
            let device = try ImageOpener.open(path: chain.child, format: .vpc, writable: true)
            #expect((device as? VHDImage)?.parent?.isWritable == false)
            try Qcow2WriterTests.apply(ops, to: device)
            let m = try RawImage(path: model, writable: true)
            try Qcow2WriterTests.apply(ops, to: m)
            try device.flush()
        }
        let want = Array(try Data(contentsOf: URL(fileURLWithPath: model)))
        let reopened = try ImageOpener.open(path: chain.child, format: .vpc, writable: false)
        try Qcow2ImageTests.compare(reopened, with: want, unit: 65536, label: "differencing after writes")
        #expect(try FormatWriteModel.sha(parent) == sum)
    }

    /// A BAT entry putting a block over the BAT itself is not written through.
    @Test func blockOverMetadataIsNotWritten() throws {
        let dir = try TempDir("fmtw-vhd")
        let image = try Self.image(dir)
        let d = try VHDCorruptionTests.Damaged(copyOf: image)
        let header = try d.headerOffset
        let bat = try d.u64(header + 16)
        try d.patch32(bat, UInt32(bat / 512))
        let error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: d.path, format: .vpc, writable: true) }
        #expect(error?.description.contains("over the image's metadata") == true, "\(String(describing: error))")
    }

    /// Two entries naming one block are not written through either.
    @Test func sharedBlockIsNotWritten() throws {
        let dir = try TempDir("fmtw-vhd")
        let image = try Self.image(dir)
        let d = try VHDCorruptionTests.Damaged(copyOf: image)
        let bat = try d.u64(try d.headerOffset + 16)
        var entries: [UInt32] = []
        for i in 0 ..< 20 { entries.append(try d.u32(bat + UInt64(4 * i))) }
        guard let used = entries.first(where: { $0 != 0xFFFF_FFFF }), let free = entries.firstIndex(of: 0xFFFF_FFFF) else {
            Issue.record("fixture has no allocated or no free block"); return
        }
        try d.patch32(bat + UInt64(4 * free), used)
        let error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: d.path, format: .vpc, writable: true) }
        #expect(error?.description.contains("over another block") == true, "\(String(describing: error))")
    }
}
