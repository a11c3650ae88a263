import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Writing VHDX images (VHDXImage+Write.swift, VHDXLogWriter.swift, VHDXHeaderWriter.swift)
/// against qemu-img: dynamic (1, 4 MiB blocks; 1, 2 MiB logs) and fixed images made by
/// qemu-img, random writes against a raw model, SIGKILL at random points, a dirty log replayed
/// into the file as QEMU replays it, damaged images refused for writing with the file unchanged.
@Suite(.serialized) struct VHDXWriterTests {
    /// A 12 MiB disk with scattered data, converted to VHDX with `options`.
    static func image(_ dir: TempDir, _ options: String) throws -> String {
        let raw = dir.file("src.raw"), image = dir.file("disk.vhdx")
        try FormatWriteModel.sourceRaw(raw, megabytes: 12, seed: 7)
        try Shell.check("qemu-img convert -O vhdx \(options) \(Shell.quote(raw)) \(Shell.quote(image))")
        return image
    }

    static func headers(_ path: String) throws -> [VHDXFormat.Header] {
        let f = try RawImage(path: path, writable: false)
        return try VHDXFormat.headerOffsets.map { VHDXFormat.Header(try f.readBytes(at: $0, count: VHDXFormat.headerSize)) }
    }

    @Test func dynamicRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-vhdx")
        let image = try Self.image(dir, "-o block_size=1M,log_size=1M")
        try FormatWriteModel.model(image, format: .vhdx, block: 1 << 20, ops: 150, seed: 1, qemuChecks: true)
    }

    /// An empty image as qemu-img creates it (every BAT entry PAYLOAD_BLOCK_ZERO), 4 MiB blocks, a 2 MiB log.
    @Test func emptyDynamicImage() throws {
        let dir = try TempDir("fmtw-vhdx")
        let image = dir.file("empty.vhdx")
        try Shell.check("qemu-img create -q -f vhdx -o block_size=4M,log_size=2M \(Shell.quote(image)) 24M")
        try FormatWriteModel.model(image, format: .vhdx, block: 4 << 20, ops: 40, seed: 2, qemuChecks: true)
    }

    /// Fixed (block_state_zero=off: with QEMU's default, a fixed image's BAT says "zero" and QEMU
    /// appends blocks to it as to a dynamic one, and so do we): every block is present, writes
    /// go in place and never grow the file. Both headers
    /// come out valid, with the next sequence numbers, new write GUIDs and an empty log.
    @Test func fixedRandomWritesMatchTheModel() throws {
        let dir = try TempDir("fmtw-vhdx")
        let image = try Self.image(dir, "-o subformat=fixed,block_size=1M,block_state_zero=off")
        let size = try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int
        let before = try Self.headers(image)
        try FormatWriteModel.model(image, format: .vhdx, block: 1 << 20, ops: 100, seed: 3, qemuChecks: true)
        #expect(try FileManager.default.attributesOfItem(atPath: image)[.size] as! Int == size)
        let after = try Self.headers(image)
        let oldest = before.map(\.sequenceNumber).max() ?? 0
        #expect(after.allSatisfy { $0.valid && $0.logGUIDIsNull && $0.sequenceNumber > oldest })
        #expect(Set(after.map(\.sequenceNumber)).count == 2)
        let newest = try #require(after.max { $0.sequenceNumber < $1.sequenceNumber })
        #expect(Array(newest.raw[16 ..< 48]) != Array(before[0].raw[16 ..< 48]), "FileWriteGuid and DataWriteGuid are new")
    }

    @Test func killedWriterLeavesNoCorruption() throws {
        let dir = try TempDir("fmtw-vhdx")
        let image = try Self.image(dir, "-o block_size=1M,log_size=1M")
        try FormatWriteModel.crash(image, format: .vhdx, block: 1 << 20, rounds: 4, seed: 4, qemuChecks: true) { killed in
            // Killed between logging BAT sectors and emptying the log: QEMU's read-only opens
            // refuse the image until its own replay (check -r all) has run, which must leave it clean.
            let check = try Shell.run("qemu-img check -f vhdx \(Shell.quote(killed)) 2>&1")
            if check.text.contains("needs to be replayed") {
                _ = try Shell.run("qemu-img check -q -r all -f vhdx \(Shell.quote(killed))")
            }
        }
    }

    /// A dirty log (data sectors, a BAT sector turning block 3 into a zero block, a zero run) is
    /// written into the file by a writable open: the log is empty afterwards, qemu-img check is
    /// clean, and the disk reads as QEMU's own replay of a copy.
    @Test func dirtyLogIsReplayedIntoTheFile() throws {
        let t = try VHDXLogTests.Dirty()
        var batSector = try t.d.bytes(t.bat, 4096)
        batSector.replaceSubrange(24 ..< 32, with: VHDXLogTests.le(2, 8))
        let entry = VHDXLogTests.entry(sequence: 9, writes: [.data(t.block + 8192, [UInt8](repeating: 0x5A, count: 4096)),
                                                            .data(t.bat, batSector), .zero(t.block + 16384, 8192)],
                                       flushed: t.fileSize, last: t.fileSize)
        try t.dirty([entry])
        let expected = try t.qemuReplayed()
        do {
            let device = try ImageOpener.open(path: t.d.path, format: .vhdx, writable: true)
            try Qcow2ImageTests.compare(device, with: expected, unit: 1 << 20, label: "replayed writable")
            try device.flush()
        }
        #expect(try Self.headers(t.d.path).allSatisfy { $0.valid && $0.logGUIDIsNull })
        let check = try Shell.run("qemu-img check -f vhdx \(Shell.quote(t.d.path))")
        #expect(check.status == 0, "\(check.text) \(check.stderr)")
        let raw = t.d.dir.file("ours.raw")
        try Shell.check("qemu-img convert -f vhdx -O raw \(Shell.quote(t.d.path)) \(Shell.quote(raw))")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: raw))) == expected)
    }

    /// A BAT update as the writer logs it, left unapplied (a crash between logging and writing
    /// in place), the entry wrapping round the end of the log: QEMU's replay (`check -r all`)
    /// and ours (read-only, in memory) both see block 2.
    @Test func aLoggedBATUpdateIsReplayedByQEMU() throws {
        let dir = try TempDir("fmtw-vhdx")
        let image = dir.file("log.vhdx")
        try Shell.check("qemu-img create -q -f vhdx -o block_size=1M \(Shell.quote(image)) 8M")
        let data = (0 ..< (1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        do {
            let file = try RawImage(path: image, writable: true)
            let (header, slot) = try VHDXMetadata.currentHeaderSlot(of: file)
            let metadata = try VHDXMetadata.read(from: file)
            let at = (file.size + VHDXFormat.mib - 1) / VHDXFormat.mib * VHDXFormat.mib
            try data.withUnsafeBytes { try file.writeExtending($0, at: at) }
            var sector = try file.readBytes(at: metadata.batOffset, count: 4096)
            LittleEndianBytes.put64(at | 6, into: &sector, at: 16)
            var headers = VHDXHeaderWriter(header: header, slot: slot)
            let guid = VHDXFormat.randomGUID()
            try headers.update(file, logGUID: guid)
            let last = UInt64(header.logLength) - 4096
            let entry = VHDXLogWriter.entry(sequence: 1, tail: UInt32(last), logGUID: guid, fileSize: file.size,
                                            sectors: [(offset: metadata.batOffset, bytes: sector)])
            #expect(entry.count == 8192)
            try VHDXLogWriter(offset: header.logOffset, length: UInt64(header.logLength), position: last).put(entry, into: file)
            try file.flush()
        }
        var expected = [UInt8](repeating: 0, count: 8 << 20)
        expected.replaceSubrange((2 << 20) ..< (3 << 20), with: data)
        try Qcow2ImageTests.compare(try ImageOpener.open(path: image, format: .vhdx, writable: false), with: expected, unit: 1 << 20, label: "ours")
        _ = try Shell.run("qemu-img check -q -r all -f vhdx \(Shell.quote(image))")
        let check = try Shell.run("qemu-img check -f vhdx \(Shell.quote(image))")
        #expect(check.status == 0, "\(check.text) \(check.stderr)")
        let raw = dir.file("log.raw")
        try Shell.check("qemu-img convert -f vhdx -O raw \(Shell.quote(image)) \(Shell.quote(raw))")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: raw))) == expected)
    }

    /// What the writer cannot handle safely is refused in one line and the file keeps every
    /// byte, while read-only opens go on working: a BAT entry past the end of the file, a log
    /// version other than 0.
    @Test func damagedImagesAreNotWritten() throws {
        let d = try VHDXImageTests.Damaged("vhdx-1m.vhdx")
        let (bat, _) = try d.region(VHDXFormat.batRegion)
        let entry = try d.u64(bat + 8)
        try d.patch64(bat + 8, (UInt64(4) << 40) | 6)          // block 1 at 4 TiB
        var sum = try FormatWriteModel.sha(d.path)
        var error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: d.path, format: .vhdx, writable: true) }
        #expect(error?.description.contains("past the end of the file") == true && error?.description.contains("not written") == true,
                "\(String(describing: error))")
        #expect(error?.description.contains("\n") == false)
        #expect(try FormatWriteModel.sha(d.path) == sum)
        _ = try d.open().readBytes(at: 0, count: 4096)

        try d.patch64(bat + 8, entry)
        for at: UInt64 in [64 * 1024, 128 * 1024] {
            try d.patch(at + 64, [1, 0])
            try d.restamp(at, size: 4096)
        }
        sum = try FormatWriteModel.sha(d.path)
        error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: d.path, format: .vhdx, writable: true) }
        #expect(error?.description.contains("log version 1 is not 0") == true, "\(String(describing: error))")
        #expect(try FormatWriteModel.sha(d.path) == sum)
        try Qcow2ImageTests.compare(try d.open(), with: try FormatFixtures.get().oracle("vhdx-1m.vhdx"), unit: 1 << 20, label: "log v1")
    }

    /// A dirty log whose replay would rewrite the header section (here its unused space) is
    /// refused for writing, the file unchanged; read-only opens replay it in memory as before.
    @Test func aLogWritingIntoTheHeadersIsNotReplayedIntoTheFile() throws {
        let t = try VHDXLogTests.Dirty()
        try t.dirty([VHDXLogTests.entry(sequence: 4, writes: [.data(252 * 1024, [UInt8](repeating: 0x77, count: 4096))],
                                        flushed: t.fileSize, last: t.fileSize)])
        let sum = try t.sha()
        let error = #expect(throws: ImageError.self) { _ = try ImageOpener.open(path: t.d.path, format: .vhdx, writable: true) }
        #expect(error?.description.contains("into the headers") == true, "\(String(describing: error))")
        #expect(try t.sha() == sum)
        try Qcow2ImageTests.compare(try t.d.open(), with: try FormatFixtures.get().oracle("vhdx-1m.vhdx"), unit: 1 << 20, label: "read-only")
    }

    /// Writable opens take QEMU's write lock: a second writer is refused.
    @Test func writableOpenTakesTheImageLock() throws {
        let dir = try TempDir("fmtw-vhdx")
        let image = dir.file("lock.vhdx")
        try Shell.check("qemu-img create -q -f vhdx \(Shell.quote(image)) 8M")
        let held = try ImageOpener.open(path: image, format: .vhdx, writable: true)
        let r = try Shell.run("qemu-io -c 'write 0 512' \(Shell.quote(image)) 2>&1")
        #expect(r.status != 0 && r.text.contains("lock"), "\(r.text)")
        try held.flush()
    }
}
