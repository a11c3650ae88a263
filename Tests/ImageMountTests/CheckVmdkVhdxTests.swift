import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// `imagemount check` of VMDK and VHDX images against `qemu-img check` on the same file: the
/// same stdout (text and --output=json), the same exit status, and the same messages on stderr
/// (qemu-img's without its program name; the line naming why a check failed is each tool's own).
/// Images are small qemu-img ones; the damage is patched in here.
@Suite struct CheckVmdkVhdxTests {
    /// Both checks probed, and with the format given (`--format` and `-f`) when `format` is
    /// set; `probe: false` only with the format given.
    static func compare(_ image: String, _ label: String, expect status: Int32, format: String? = nil, probe: Bool = true) throws {
        let q = Shell.quote
        let runs = (probe ? [(false, nil), (true, nil)] : []) + (format.map { [(false, $0), (true, $0)] } ?? [])
        for (json, given) in runs {
            let ours = try ImageMountBinary.run(["check"] + (given.map { ["--format=\($0)"] } ?? []) + ["-a", image] + (json ? ["--output=json"] : []))
            let theirs = try Shell.run("qemu-img check \(given.map { "-f \($0) " } ?? "")\(json ? "--output=json " : "")\(q(image))")
            #expect(theirs.status == status, "\(label): qemu-img check exited \(theirs.status): \(theirs.text)\(theirs.stderr)")
            #expect(ours.status == theirs.status, "\(label): exit \(ours.status) vs qemu-img \(theirs.status); ours: \(ours.stderr)")
            #expect(ours.text == theirs.text, "\(label): ours\n\(ours.text)\nqemu-img\n\(theirs.text)")
            let theirLines = theirs.stderr.split(separator: "\n").map { $0.hasPrefix("qemu-img: ") ? String($0.dropFirst(10)) : String($0) }
                .filter { !$0.hasPrefix("Check failed") && !$0.hasPrefix("Could not open") }
            let ourLines = ours.stderr.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("imagemount: ") }
            #expect(ourLines == theirLines, "\(label): stderr ours\n\(ours.stderr)\nqemu-img\n\(theirs.stderr)")
            // A failed check says so in one line naming the image; a finished one adds nothing.
            let failureLines = ours.stderr.split(separator: "\n").filter { $0.hasPrefix("imagemount: \(image): ") }
            #expect(failureLines.count == (status == 1 ? 1 : 0), "\(label): \(ours.stderr)")
        }
    }

    /// Little-endian fields of a file, read and patched in place.
    struct File {
        let path: String
        func bytes(_ at: UInt64, _ n: Int) throws -> [UInt8] {
            let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? h.close() }
            try h.seek(toOffset: at)
            return Array(try h.read(upToCount: n) ?? Data())
        }
        func u32(_ at: UInt64) throws -> UInt32 { try bytes(at, 4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        func u64(_ at: UInt64) throws -> UInt64 { try bytes(at, 8).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func patch(_ at: UInt64, _ b: [UInt8]) throws {
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? h.close() }
            try h.seek(toOffset: at)
            h.write(Data(b))
        }
        func patch32(_ at: UInt64, _ v: UInt32) throws { try patch(at, (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }) }
        func patch64(_ at: UInt64, _ v: UInt64) throws { try patch(at, (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }) }
        var size: UInt64 { (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0 }
    }

    /// A 4 MiB raw disk with data at 0, 1 MiB and 3 MiB, converted to VMDK `subformat`.
    static func vmdk(_ dir: TempDir, _ name: String, _ subformat: String, options: String = "") throws -> String {
        let raw = dir.file("src.raw"), out = dir.file(name)
        let q = Shell.quote
        if !FileManager.default.fileExists(atPath: raw) {
            try Shell.check("qemu-img create -q -f raw \(q(raw)) 4M && qemu-io -f raw -c 'write -P 1 0 192k' -c 'write -P 2 1M 64k' -c 'write -P 3 3M 128k' \(q(raw)) >/dev/null")
        }
        try Shell.check("qemu-img convert -f raw -O vmdk -o subformat=\(subformat)\(options) \(q(raw)) \(q(out))")
        return out
    }

    /// The grain table entry `index` of GD entry 0 of the sparse extent `path` (header at 0, or
    /// the footer's header in the last 1024 bytes when the directory is at the end).
    static func gte(_ f: File, _ index: Int) throws -> UInt64 {
        var gdSector = try f.u64(56)
        if gdSector == .max { gdSector = try f.u64(f.size - 1024 + 56) }
        let gt = UInt64(try f.u32(gdSector * 512))
        return gt * 512 + UInt64(4 * index)
    }

    @Test(arguments: ["monolithicSparse", "twoGbMaxExtentSparse", "monolithicFlat", "twoGbMaxExtentFlat", "streamOptimized"])
    func cleanVmdkSubformats(_ subformat: String) throws {
        let dir = try TempDir("imagemount-check-vmdk")
        let image = try Self.vmdk(dir, "c.vmdk", subformat)
        try Self.compare(image, subformat, expect: 0, format: "vmdk")
    }

    /// A grain table entry past the end of the file ends QEMU's check with EINVAL (exit 1, no
    /// verdict); a grain directory entry past the end reads as an empty table (clean); a zeroed
    /// grain (zeroed_grain=on) is no offset; a compressed grain past the end fails like a data one.
    @Test func damagedVmdkGrains() throws {
        let dir = try TempDir("imagemount-check-vmdk")
        let sparse = File(path: try Self.vmdk(dir, "s.vmdk", "monolithicSparse"))
        let entry = try Self.gte(sparse, 2)
        try sparse.patch32(entry, UInt32(sparse.size / 512 + 10))
        try Self.compare(sparse.path, "grain past the end", expect: 1, format: "vmdk")
        try sparse.patch32(entry, UInt32(sparse.size / 512 - 1))
        try Self.compare(sparse.path, "grain in the last sector", expect: 0)

        let gd = File(path: try Self.vmdk(dir, "g.vmdk", "monolithicSparse"))
        try gd.patch32(try gd.u64(56) * 512, 0x0100_0000)
        try Self.compare(gd.path, "grain table past the end", expect: 0)

        let zeroed = File(path: try Self.vmdk(dir, "z.vmdk", "monolithicSparse", options: ",zeroed_grain=on"))
        try zeroed.patch32(try Self.gte(zeroed, 20), 1)
        try Self.compare(zeroed.path, "zeroed grain", expect: 0)

        let stream = File(path: try Self.vmdk(dir, "o.vmdk", "streamOptimized"))
        try stream.patch32(try Self.gte(stream, 1), UInt32(stream.size / 512 + 1))
        try Self.compare(stream.path, "compressed grain past the end", expect: 1)
    }

    /// Extents of a descriptor: a grain past the end of the third extent file (the sector QEMU
    /// names counts from the start of the disk), and a flat extent whose file is empty.
    @Test func damagedVmdkExtents() throws {
        let dir = try TempDir("imagemount-check-vmdk")
        let q = Shell.quote
        let image = dir.file("t.vmdk")
        try Shell.check("qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse \(q(image)) 5G && qemu-io -f vmdk -c 'write -P 4 4100M 64k' \(q(image)) >/dev/null")
        try Self.compare(image, "three extents", expect: 0)
        let third = File(path: dir.file("t-s003.vmdk"))
        try third.patch32(try Self.gte(third, 7), UInt32(third.size / 512 + 3))
        try Self.compare(image, "grain past the end of the third extent", expect: 1)

        let flat = try Self.vmdk(dir, "f.vmdk", "monolithicFlat")
        try Shell.check("truncate -s 0 \(q(dir.file("f-flat.vmdk")))")
        try Self.compare(flat, "empty flat extent file", expect: 1)

        // A descriptor whose name does not say vmdk opens its extent only with the format given
        // (the probing policy; qemu-img has none).
        let named = try Self.vmdk(dir, "p.img", "monolithicFlat")
        try Self.compare(named, "flat descriptor named .img", expect: 0, format: "vmdk", probe: false)
        let probed = try ImageMountBinary.run(["check", "-a", named])
        #expect(probed.status != 0 && probed.stderr.contains("--format=vmdk"), "\(probed.stderr)")
    }

    /// A dynamic VHDX with 1 MiB blocks (log at 1 MiB, BAT and metadata after it, data from 4 MiB).
    static func vhdx(_ dir: TempDir, _ name: String, options: String = "block_size=1M", io: String = "-c 'write -P 1 0 2M' -c 'write -P 2 5M 1M'") throws -> File {
        let path = dir.file(name)
        let q = Shell.quote
        try Shell.check("qemu-img create -q -f vhdx -o \(options) \(q(path)) 8M" + (io.isEmpty ? "" : " && qemu-io -f vhdx \(io) \(q(path)) >/dev/null"))
        return File(path: path)
    }

    /// The first region table's entry for `guid`: where it is in the file and its region's offset.
    static func region(_ f: File, _ guid: [UInt8]) throws -> (entry: UInt64, offset: UInt64) {
        let table: UInt64 = 192 * 1024
        for i in 0 ..< UInt64(try f.u32(table + 8)) where try f.bytes(table + 16 + 32 * i, 16) == guid {
            return (table + 16 + 32 * i, try f.u64(table + 32 + 32 * i))
        }
        throw Shell.Failure(command: "region", status: -1, stderr: "no region")
    }

    @Test func cleanVhdx() throws {
        let dir = try TempDir("imagemount-check-vhdx")
        try Self.compare(try Self.vhdx(dir, "d.vhdx").path, "dynamic", expect: 0, format: "vhdx")
        try Self.compare(try Self.vhdx(dir, "e.vhdx", options: "block_size=8M", io: "").path, "empty", expect: 0)
        try Self.compare(try Self.vhdx(dir, "f.vhdx", options: "subformat=fixed,block_size=1M", io: "").path, "fixed", expect: 0)
    }

    /// BAT entries QEMU's vhdx_check_bat_entries counts (exit 2): a block past the end of the
    /// file, one cut short by a truncation, blocks over the metadata region and over the log, an
    /// offset near 2^64 (two errors); other states are not looked at.
    @Test func damagedVhdxBAT() throws {
        let dir = try TempDir("imagemount-check-vhdx")
        let fullyPresent: UInt64 = 6
        /// A fresh image whose BAT entries get `entries(metadata region offset)`.
        func damaged(_ name: String, _ entries: (UInt64) -> [(Int, UInt64)]) throws -> String {
            let f = try Self.vhdx(dir, name)
            let bat = try Self.region(f, VHDXFormat.batRegion).offset
            let meta = try Self.region(f, VHDXFormat.metadataRegion).offset
            for (i, value) in entries(meta) { try f.patch64(bat + UInt64(8 * i), value) }
            return f.path
        }
        try Self.compare(try damaged("past.vhdx") { _ in [(0, 100 << 20 | fullyPresent)] }, "block past the end", expect: 2, format: "vhdx")
        try Self.compare(try damaged("meta.vhdx") { [(1, $0 | fullyPresent)] }, "block over the metadata", expect: 2)
        try Self.compare(try damaged("log.vhdx") { _ in [(0, 1 << 20 | fullyPresent)] }, "block over the log", expect: 2)
        try Self.compare(try damaged("wrap.vhdx") { _ in [(5, 0xFFFF_FFFF_FFF0_0000 | fullyPresent)] }, "offset near 2^64", expect: 2)
        try Self.compare(try damaged("many.vhdx") { [(0, 100 << 20 | fullyPresent), (1, $0 | fullyPresent), (3, 200 << 20 | 2)] },
                         "two errors and a zero block", expect: 2)
        let cut = try Self.vhdx(dir, "cut.vhdx")
        try Shell.check("truncate -s \(cut.size - 300 * 1024) \(Shell.quote(cut.path))")
        try Self.compare(cut.path, "truncated last block", expect: 2)
    }

    /// Regions of an unknown, optional kind added to the region table, inside the first two
    /// payload blocks (qemu-io's writes put them at 8 MiB and 9 MiB): each block's line names the region registered last of those it overlaps (QEMU
    /// walks its list newest first), a zero-length one included.
    @Test func payloadOverSeveralRegions() throws {
        let dir = try TempDir("imagemount-check-vhdx")
        let f = try Self.vhdx(dir, "x.vhdx", io: "-c 'write -P 1 0 8M'")
        let table: UInt64 = 192 * 1024, mib: UInt64 = 1 << 20
        var count = UInt64(try f.u32(table + 8))
        for (offset, length) in [(8 * mib + 256 << 10, 256 << 10), (8 * mib, 64 << 10), (9 * mib + 4096, 4096), (8 * mib + 128 << 10, 0)] {
            let entry = table + 16 + 32 * count
            try f.patch(entry, [UInt8](repeating: 0x5A, count: 16))
            try f.patch64(entry + 16, offset)
            try f.patch64(entry + 24, UInt64(length))    // length, then flags 0: not required
            count += 1
        }
        try f.patch32(table + 8, UInt32(count))
        try f.patch32(table + 4, VHDXFormat.crc32c(try f.bytes(table, 64 * 1024), checksumAt: 4))
        try Self.compare(f.path, "payload over several regions", expect: 2)
    }

    /// What QEMU's open refuses before any check (exit 1): overlapping regions in the region
    /// table, and a damaged first region table (QEMU does not read the copy; imagemount does).
    @Test func vhdxQemuImgCannotOpen() throws {
        let dir = try TempDir("imagemount-check-vhdx")
        let f = try Self.vhdx(dir, "r.vhdx")
        let table: UInt64 = 192 * 1024
        let original = try f.bytes(table, 64 * 1024)
        // The BAT region 64 KiB longer, over the start of the metadata region after it.
        let (entry, _) = try Self.region(f, VHDXFormat.batRegion)
        try f.patch32(entry + 24, try f.u32(entry + 24) + 64 * 1024)
        try f.patch32(table + 4, VHDXFormat.crc32c(try f.bytes(table, 64 * 1024), checksumAt: 4))
        try Self.compare(f.path, "overlapping regions", expect: 1)
        try f.patch(table, original)
        try f.patch(table + 100, [0x01])
        try Self.compare(f.path, "first region table damaged", expect: 1, format: "vhdx")
        // imagemount itself reads the disk through the second copy.
        #expect(try ImageMountBinary.run(["info", "-a", f.path]).status == 0)
    }

    /// Raw images keep their one line and status 0 (qemu-img check: "This image format does not
    /// support checks", status 63).
    @Test func rawHasNothingToCheck() throws {
        let dir = try TempDir("imagemount-check-raw")
        let raw = dir.file("d.img")
        try Shell.check("truncate -s 1M \(Shell.quote(raw))")
        for format in [[], ["--format=raw"]] {
            let ours = try ImageMountBinary.run(["check"] + format + ["-a", raw])
            #expect(ours.status == 0 && ours.text == "\(raw): raw images have no metadata to check (nor do vpc and qcow)\n", "\(ours.text)\(ours.stderr)")
        }
        let unknown = try ImageMountBinary.run(["check", "--format=vmdx", "-a", raw])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown --format 'vmdx'"), "\(unknown.stderr)")
    }
}
