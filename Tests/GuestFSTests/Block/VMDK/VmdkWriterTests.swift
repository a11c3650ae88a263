import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Writing VMDK images (VmdkImage+Write.swift, VmdkSparseWriter.swift) against qemu-img: every
/// subformat qemu-img writes, random writes against a raw model (`qemu-img compare`, `qemu-img
/// check`), a child written over its parent (which stays as it was), SIGKILL at random points,
/// stream-optimized and damaged images refused.
@Suite(.serialized) struct VmdkWriterTests {
    static let grain = 64 << 10

    /// A 40 MiB disk with scattered data, converted to VMDK with `options`, in its own folder
    /// (split subformats write several files).
    static func image(_ dir: TempDir, _ options: String = "", megabytes: Int = 40) throws -> String {
        let raw = dir.file("src.raw"), image = dir.file("disk.vmdk")
        try FormatWriteModel.sourceRaw(raw, megabytes: megabytes, seed: 9)
        try Shell.check("qemu-img convert -O vmdk \(options) \(Shell.quote(raw)) \(Shell.quote(image)) && rm \(Shell.quote(raw))")
        return image
    }

    @Test func monolithicSparseRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw2-vmdk")
        try FormatWriteModel.model(try Self.image(dir), format: .vmdk, block: Self.grain, ops: 400, seed: 1, qemuChecks: true)
    }

    /// Zero writes of whole grains become zeroed-grain entries (QEMU's VMDK_GTE_ZEROED).
    @Test func zeroedGrainRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = try Self.image(dir, "-o zeroed_grain=on")
        try FormatWriteModel.model(image, format: .vmdk, block: Self.grain, ops: 400, seed: 2, qemuChecks: true)
        do {
            let device = try ImageOpener.open(path: image, format: .vmdk, writable: true)
            try device.writeZeros(at: 0, length: 4 * Self.grain)
            try device.flush()
            guard let vmdk = device as? VmdkImage, case let .sparse(sparse) = vmdk.extents[0].storage else {
                Issue.record("not a sparse VMDK"); return
            }
            #expect(try sparse.grain(at: 0) == .zero)
        }
        #expect(try Shell.run("qemu-img map --output=json -f vmdk \(Shell.quote(image))").text.contains("\"start\": 0, \"length\": 262144, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false"))
    }

    @Test func emptyImage() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = dir.file("empty.vmdk")
        try Shell.check("qemu-img create -q -f vmdk \(Shell.quote(image)) 33M")
        try FormatWriteModel.model(image, format: .vmdk, block: Self.grain, ops: 300, seed: 3, qemuChecks: true)
    }

    /// Two extent files (2 GiB and 64 MiB) behind one descriptor.
    @Test func twoGbMaxExtentSparseRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = dir.file("split.vmdk")
        try Shell.check("qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse \(Shell.quote(image)) 2112M")
        try Shell.check("qemu-io -f vmdk -c 'write -P 0x5a 2047M 2M' -c 'write -P 0x11 1M 100k' \(Shell.quote(image)) >/dev/null")
        let extents = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("split-s") }
        #expect(extents.count == 2, "\(extents)")
        try FormatWriteModel.model(image, format: .vmdk, block: Self.grain, ops: 300, seed: 4, qemuChecks: true)
    }

    @Test func monolithicFlatRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = try Self.image(dir, "-o subformat=monolithicFlat")
        let before = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        try FormatWriteModel.model(image, format: .vmdk, block: Self.grain, ops: 300, seed: 5, qemuChecks: true)
        // The descriptor got a new CID, and nothing else in it changed: same length (qemu-img
        // convert leaves it NUL-padded to 512 bytes, as QEMU's vmdk_write_cid writes it), the
        // other bytes as they were.
        let after = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)))
        let digits = VmdkDescriptor.cidDigits(in: before)
        #expect(after.count == before.count && digits != nil)
        let changed = (0 ..< min(before.count, after.count)).filter { before[$0] != after[$0] }
        #expect(!changed.isEmpty && changed.allSatisfy { digits?.contains($0) == true }, "changed bytes: \(changed.prefix(16))")
    }

    @Test func twoGbMaxExtentFlatRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = dir.file("split.vmdk")
        try Shell.check("qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat \(Shell.quote(image)) 2112M")
        try FormatWriteModel.model(image, format: .vmdk, block: Self.grain, ops: 300, seed: 6, qemuChecks: true)
    }

    /// A child made by qemu-img over a sparse parent: the child is written, the parent is not,
    /// and the child's parentCID still names the parent.
    @Test func childIsWrittenAndItsParentIsNot() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let parent = try Self.image(dir)
        let child = dir.file("child.vmdk")
        try Shell.check("qemu-img create -q -f vmdk -b disk.vmdk -F vmdk \(Shell.quote(child))")
        try Shell.check("qemu-io -f vmdk -c 'write -P 0x61 0 70k' \(Shell.quote(child)) >/dev/null")
        let cid = try VmdkMetadata.read(from: RawImage(path: child, writable: false)).cid
        try FormatWriteModel.model(child, format: .vmdk, block: Self.grain, ops: 300, seed: 7, qemuChecks: true, unchanged: [parent])
        let m = try VmdkMetadata.read(from: RawImage(path: child, writable: false))
        #expect(m.cid != cid, "the first write gives the child a new CID")
        #expect(m.parentCID == (try VmdkMetadata.read(from: RawImage(path: parent, writable: false))).cid)
    }

    @Test func killedWriterLeavesNoCorruption() throws {
        let dir = try TempDir("fmtw2-vmdk")
        try FormatWriteModel.crash(try Self.image(dir), format: .vmdk, block: Self.grain, rounds: 8, seed: 8, qemuChecks: true)
    }

    @Test func streamOptimizedWritableOpensAreRefused() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = try Self.image(dir, "-o subformat=streamOptimized")
        let sum = try FormatWriteModel.sha(image)
        let error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: image, format: .vmdk, writable: true) }
        #expect(error?.reason == VmdkImage.streamRefusal, "\(String(describing: error))")
        #expect(try FormatWriteModel.sha(image) == sum)
    }

    /// A grain directory entry putting a grain table after the first grain (where new grains
    /// go) is not written through.
    @Test func grainTableOutsideTheMetadataIsNotWritten() throws {
        let dir = try TempDir("fmtw2-vmdk")
        let image = try Self.image(dir)
        let f = try RawImage(path: image, writable: true)
        let header = try VmdkSparseHeader(f.readBytes(at: 0, count: 512))
        try f.writeBytes([0, 0, 0x10, 0], at: header.gdOffset * 512)   // sector 0x100000, far past the metadata
        try f.flush()
        let error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: image, format: .vmdk, writable: true) }
        #expect(error?.description.contains("outside the metadata") == true, "\(String(describing: error))")
    }
}
