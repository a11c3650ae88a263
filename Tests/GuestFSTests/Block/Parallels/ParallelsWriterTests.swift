import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Writing Parallels images (ParallelsImage+Write.swift) against qemu-img: random writes against a
/// raw model (`qemu-img compare`, `qemu-img check` clean after close), SIGKILL at random points
/// (only leaks and the unclean-close flag afterwards), `inuse` while open, damaged BATs refused.
@Suite(.serialized) struct ParallelsWriterTests {
    static func image(_ dir: TempDir, _ options: String = "") throws -> String {
        let raw = dir.file("src.raw"), image = dir.file("disk.hdd")
        try FormatWriteModel.sourceRaw(raw, megabytes: 40, seed: 11)
        try Shell.check("qemu-img convert -O parallels \(options) \(Shell.quote(raw)) \(Shell.quote(image))")
        return image
    }

    static func inUse(_ image: String) throws -> Bool {
        LittleEndianBytes(try RawImage(path: image, writable: false).readBytes(at: 44, count: 4)).u32(0) == ParallelsFormat.inUseMagic
    }

    @Test func randomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-parallels")
        let image = try Self.image(dir)
        try FormatWriteModel.model(image, format: .parallels, block: 1 << 20, ops: 500, seed: 1, qemuChecks: true)
        #expect(try !Self.inUse(image))
    }

    @Test func smallClusters() throws {
        let dir = try TempDir("fmtw-parallels")
        let image = dir.file("small.hdd")
        try Shell.check("qemu-img create -q -f parallels -o cluster_size=4096 \(Shell.quote(image)) 20M")
        try FormatWriteModel.model(image, format: .parallels, block: 4096, ops: 400, seed: 2, qemuChecks: true)
    }

    @Test func killedWriterLeavesNoCorruption() throws {
        let dir = try TempDir("fmtw-parallels")
        try FormatWriteModel.crash(try Self.image(dir), format: .parallels, block: 1 << 20, rounds: 8, seed: 3, qemuChecks: true,
                                   uncleanClose: "not closed correctly")
    }

    @Test func inUseWhileOpenForWriting() throws {
        let dir = try TempDir("fmtw-parallels")
        let image = try Self.image(dir)
        do {
            let device = try ImageOpener.open(path: image, format: .parallels, writable: true)
            #expect(try Self.inUse(image))
            try device.writeBytes([9], at: 30 << 20)
        }
        #expect(try !Self.inUse(image))
        let check = try Shell.run("qemu-img check -f parallels \(Shell.quote(image))")
        #expect(check.status == 0, "\(check.text)")
    }

    /// A BAT entry putting a cluster over the BAT is not written through: an empty image made
    /// an old-format one (entries count sectors), entry 3 naming sector 1.
    @Test func clusterOverTheBATIsNotWritten() throws {
        let dir = try TempDir("fmtw-parallels")
        let image = dir.file("bad.hdd")
        try Shell.check("qemu-img create -q -f parallels \(Shell.quote(image)) 8M")
        let f = try RawImage(path: image, writable: true)
        try f.writeBytes(Array("WithoutFreeSpace".utf8), at: 0)
        try f.writeBytes([1, 0, 0, 0], at: 64 + 3 * 4)
        let sum = try FormatWriteModel.sha(image)
        VHDCorruptionTests.expectError(["BAT entry 3", "over the header or the BAT"]) {
            _ = try ImageOpener.open(path: image, format: .parallels, writable: true)
        }
        #expect(try FormatWriteModel.sha(image) == sum)
    }
}
