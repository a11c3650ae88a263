import Foundation
import Testing
import TestSupport

/// Commands on guests stored in the read-only formats (vpc, vdi, vhdx, qcow, qed, parallels): the ext4 sample disk
/// converted with qemu-img, its files as `cat` prints them, `info` as `qemu-img info` prints it.
@Suite struct OtherFormatsCommandTests {
    /// (name, qemu-img convert options, whether probing finds the format, format for -f).
    static let variants: [(name: String, options: String, probes: Bool, format: String)] = [
        ("vpc-dynamic.vhd", "-O vpc", true, "vpc"),
        ("vpc-force.vhd", "-O vpc -o force_size=on", true, "vpc"),
        ("vpc-fixed.vhd", "-O vpc -o subformat=fixed", false, "vpc"),
        ("vdi-dynamic.vdi", "-O vdi", true, "vdi"),
        ("vdi-static.vdi", "-O vdi -o static=on", true, "vdi"),
        ("vhdx-dynamic.vhdx", "-O vhdx", true, "vhdx"),
        ("vhdx-fixed.vhdx", "-O vhdx -o subformat=fixed,block_size=1M", true, "vhdx"),
        ("vm.qcow", "-O qcow", true, "qcow"),
        ("vm-compressed.qcow", "-c -O qcow", true, "qcow"),
        ("vm.qed", "-O qed", true, "qed"),
        ("vm-4k.qed", "-O qed -o cluster_size=4096,table_size=2", true, "qed"),
        ("vm.hdd", "-O parallels", true, "parallels"),
        ("vm-64k.hdd", "-O parallels -o cluster_size=64k", true, "parallels"),
    ]

    static func convert(_ name: String, _ options: String) throws -> (dir: TempDir, path: String) {
        let dir = try TempDir()
        let raw = try Fixtures.image("ext4", type: "ext4")
        // sync: a file system with delayed allocation changes st_blocks ("disk size") at writeback.
        let (q, out) = (Shell.quote, Shell.quote(dir.file(name)))
        if options.hasPrefix("-c -O qcow") {
            // QEMU 7.2's convert -c -O qcow exits 1 without a message after writing every
            // cluster: its status is ignored and qemu-img compare vouches for the image.
            try Shell.check("{ qemu-img convert \(options) \(q(raw)) \(out) || true; } && qemu-img compare -q -f raw -F qcow \(q(raw)) \(out) && sync \(out)")
        } else {
            try Shell.check("qemu-img convert \(options) \(q(raw)) \(out) && sync \(out)")
        }
        return (dir, dir.file(name))
    }

    func expected(_ relative: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + relative))
    }

    @Test(arguments: variants.indices)
    func catReadsEveryFile(_ index: Int) throws {
        let v = Self.variants[index]
        let (dir, image) = try Self.convert(v.name, v.options)
        _ = dir
        let format = v.probes ? [] : ["--format=\(v.format)"]
        let hostname = try ImageMountBinary.run(["cat"] + format + ["-a", image, "/etc/hostname"])
        #expect(hostname.status == 0, "\(hostname.stderr)")
        #expect(hostname.stdout == (try expected("etc/hostname")))
        for relative in Fixtures.tree.regularFiles.prefix(40) where !relative.hasPrefix("many/") {
            let result = try ImageMountBinary.run(["cat"] + format + ["-a", image, "/" + relative])
            #expect(result.status == 0, "\(relative): \(result.stderr)")
            #expect(result.stdout == (try expected(relative)), "\(relative)")
        }
    }

    @Test(arguments: variants.indices)
    func infoMatchesQemuImg(_ index: Int) throws {
        let v = Self.variants[index]
        let (dir, image) = try Self.convert(v.name, v.options)
        let q = Shell.quote
        for json in [false, true] {
            let ours = try ImageMountBinary.run(["info", "--format=\(v.format)", "-a", image] + (json ? ["--output=json"] : []))
            #expect(ours.status == 0, "\(ours.stderr)")
            let theirs = try Shell.check("cd \(q(dir.path)) && qemu-img info -f \(v.format) \(json ? "--output=json " : "")\(q(image))")
            #expect(ours.text == theirs)
        }
        if v.probes {
            let ours = try ImageMountBinary.run(["info", "-a", image])
            #expect(ours.text == (try Shell.check("qemu-img info \(q(image))")))
        }
    }

    /// A qcow2 overlay whose backing file is in the format (`-F vpc`): read through, and
    /// `info --backing-chain` as qemu-img's.
    @Test(arguments: variants.indices)
    func qcow2OverlayOverTheFormat(_ index: Int) throws {
        let v = Self.variants[index]
        let (dir, base) = try Self.convert(v.name, v.options)
        let q = Shell.quote
        try Shell.check("cd \(q(dir.path)) && qemu-img create -q -f qcow2 -b \(q(v.name)) -F \(v.format) top.qcow2 && sync top.qcow2")
        let top = dir.file("top.qcow2")
        _ = base
        let hostname = try ImageMountBinary.run(["cat", "--format=qcow2", "-a", top, "/etc/hostname"])
        #expect(hostname.status == 0, "\(hostname.stderr)")
        #expect(hostname.stdout == (try expected("etc/hostname")))
        for json in [false, true] {
            let ours = try ImageMountBinary.run(["info", "--format=qcow2", "--backing-chain", "-a", top] + (json ? ["--output=json"] : []))
            #expect(ours.status == 0, "\(ours.stderr)")
            let theirs = try Shell.check("cd \(q(dir.path)) && qemu-img info -f qcow2 --backing-chain \(json ? "--output=json " : "")\(q(top))")
            #expect(ours.text == theirs)
        }
    }
}

/// `imagemount check` of the formats qemu-img checks besides qcow2 (VDI, Parallels, QED): text,
/// JSON and exit status as qemu-img check's.
@Suite struct OtherFormatsCheckCommandTests {
    @Test(arguments: [("c.vdi", "-O vdi"), ("c.hdd", "-O parallels"), ("c.qed", "-O qed")])
    func matchesQemuImgCheck(_ name: String, _ options: String) throws {
        let (dir, image) = try OtherFormatsCommandTests.convert(name, options)
        let q = Shell.quote
        for json in [false, true] {
            let ours = try ImageMountBinary.run(["check", "-a", image] + (json ? ["--output=json"] : []))
            let theirs = try Shell.run("cd \(q(dir.path)) && qemu-img check \(json ? "--output=json " : "")\(q(image))")
            #expect(ours.status == theirs.status, "\(name)")
            #expect(ours.text == String(decoding: theirs.stdout, as: UTF8.self), "\(name)")
        }
    }

    /// A damaged table can name millions of problems: the first 100 000 lines are kept and the
    /// rest counted in one more line (bounded memory), while the summary, the JSON counts and the
    /// exit status stay qemu-img check's. A 200 GiB VDI whose 204 800 map entries all point past
    /// the disk gives qemu-img 204 800 "too large" lines.
    @Test func messagesAreCappedButCountedLikeQemuImg() throws {
        let dir = try TempDir()
        let image = dir.file("many.vdi"), q = Shell.quote
        try Shell.check("qemu-img create -q -f vdi \(q(image)) 200G")
        // The block map starts where the header's offset at 0x154 says (little-endian).
        let header = [UInt8](try Data(contentsOf: URL(fileURLWithPath: image)).prefix(0x184))
        let mapOffset = header[0x154 ..< 0x158].reversed().reduce(0) { $0 << 8 | Int($1) }
        try Shell.check("python3 -c \"import sys; sys.stdout.buffer.write(b'\\xff\\xff\\xff\\x7f' * 204800)\" | dd of=\(q(image)) bs=64k seek=\(mapOffset) oflag=seek_bytes conv=notrunc status=none")
        let ours = try ImageMountBinary.run(["check", "-a", image])
        let theirs = try Shell.run("qemu-img check \(q(image))")
        #expect(ours.status == theirs.status && ours.status == 2, "\(ours.stderr.suffix(300))")
        #expect(ours.text == String(decoding: theirs.stdout, as: UTF8.self))
        let lines = ours.stderr.split(separator: "\n")
        #expect(lines.count == 100_001, "\(lines.count) lines")
        #expect(lines.last?.contains("104800 more messages left out (the first 100000 are shown)") == true, "\(lines.last ?? "")")
        #expect(theirs.stderr.split(separator: "\n").count == 204_800)
        let json = try ImageMountBinary.run(["check", "-a", image, "--output=json"])
        #expect(json.text == String(decoding: try Shell.run("qemu-img check --output=json \(q(image))").stdout, as: UTF8.self))
    }
}

/// Hostile qcow, QED and Parallels headers through the command line: one line naming the file
/// and the problem, a non-zero exit, the image unchanged.
@Suite struct OtherFormatsHostileCommandTests {
    static func patch(_ path: String, _ offset: UInt64, _ bytes: [UInt8]) throws {
        let hex = bytes.map { String(format: "\\%03o", $0) }.joined()
        try Shell.check("printf '\(hex)' | dd of=\(Shell.quote(path)) bs=1 seek=\(offset) conv=notrunc status=none")
    }

    /// (image, convert options, offset, bytes, words of the error).
    static let cases: [(name: String, options: String, offset: UInt64, bytes: [UInt8], words: String)] = [
        ("h.qcow", "-O qcow", 32, [17], "cluster size must be between 512 and 64k"),
        ("h2.qcow", "-O qcow", 24, [0x40, 0, 0, 0, 0, 0, 0, 0], "more than imagemount's limit"),
        ("h.qed", "-O qed", 8, [3, 0, 0, 0], "table size 3 is invalid"),
        ("h2.qed", "-O qed", 40, [0, 0, 0, 0, 0, 1, 0, 0], "L1 table offset"),
        ("h.hdd", "-O parallels", 28, [0, 0, 0, 0], "zero sectors per cluster"),
        ("h2.hdd", "-O parallels", 32, [0xFF, 0xFF, 0xFF, 0xFF], "more than imagemount's limit"),
    ]

    @Test(arguments: cases.indices)
    func damagedHeadersFailInOneLine(_ index: Int) throws {
        let c = Self.cases[index]
        let (dir, image) = try OtherFormatsCommandTests.convert(c.name, c.options)
        _ = dir
        try Self.patch(image, c.offset, c.bytes)
        let before = try Shell.check("sha256sum < \(Shell.quote(image))")
        for args in [["cat", "-a", image, "/etc/hostname"], ["info", "-a", image]] {
            let r = try ImageMountBinary.run(args)
            #expect(r.status != 0, "\(args[0]): \(r.stderr)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args[0]): \(r.stderr)")
            #expect(r.stderr.contains(image) && r.stderr.contains(c.words), "\(args[0]): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        #expect(try Shell.check("sha256sum < \(Shell.quote(image))") == before)
    }

    /// Two qcow images naming each other as backing file.
    @Test func qcowBackingLoop() throws {
        let dir = try TempDir("imagemount-qcow-loop")
        let image = dir.file("a.qcow")
        try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img create -q -f qcow -b b.qcow -F qcow -u a.qcow 16M && qemu-img create -q -f qcow -b a.qcow -F qcow -u b.qcow 16M")
        for args in [["cat", "-a", image, "/etc/hostname"], ["info", "--backing-chain", "-a", image]] {
            let r = try ImageMountBinary.run(args)
            #expect(r.status != 0, "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("backing chain loops back"), "\(r.stderr)")
        }
    }
}
