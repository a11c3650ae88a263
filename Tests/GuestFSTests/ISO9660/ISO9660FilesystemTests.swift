import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import Testing
import TestSupport

/// The ISO 9660 driver read against the tree the images were mastered from, and against what
/// the tools that read ISO images (isoinfo, xorriso, blkid) say of the same images.
@Suite(.serialized) struct ISO9660FilesystemTests {
    static let host = { () -> [[UInt8]: EntryFacts] in
        try? ISO9660Fixtures.makeTree()
        return HostTree.walk(ISO9660Fixtures.source)
    }()

    /// What Rock Ridge keeps of a host file: everything `EntryFacts` holds (mtimes in seconds).
    /// libisofs and genisoimage record a directory's nlink as they count it, not as the host
    /// filesystem does, so directories are compared by their other facts.
    func expectSameTree(_ guest: [[UInt8]: (facts: EntryFacts, node: UInt64)], image: String, leftOut: Set<[UInt8]> = []) {
        let host = Self.host.filter { !leftOut.contains($0.key) }
        #expect(Set(guest.keys) == Set(host.keys), "\(image): names differ: only in image \(Set(guest.keys).subtracting(host.keys).map(ISO9660Walk.text)), only on host \(Set(host.keys).subtracting(guest.keys).map(ISO9660Walk.text))")
        for (path, want) in host where !path.isEmpty {
            guard var got = guest[path]?.facts else { continue }
            var want = want
            if want.mode & 0o170000 == 0o040000 { got.links = 0; want.links = 0 }
            #expect(got == want, "\(image): \(ISO9660Walk.text(path))")
        }
    }

    @Test func rockRidgeTreeMatchesTheSource() throws {
        let fs = try ISO9660Fixtures.open(ISO9660Fixtures.rockRidgeJoliet())
        #expect(fs.namespace == .rockRidge)
        #expect(fs.typeName == "iso9660")
        expectSameTree(try ISO9660Walk.walk(fs), image: "xorriso -R -J")
    }

    @Test func relocatedDirectoriesAreBackInPlace() throws {
        let fs = try ISO9660Fixtures.open(ISO9660Fixtures.genisoimageRelocated())
        #expect(fs.namespace == .rockRidge)
        // genisoimage moved deep/1/.../7/8 into rr_moved (RRIP 4.1.5); the tree shows none of it.
        let raw = try Shell.check("isoinfo -l -i \(Shell.quote(ISO9660Fixtures.genisoimageRelocated()))")
        #expect(raw.contains("Directory listing of /RR_MOVED/"))
        expectSameTree(try ISO9660Walk.walk(fs), image: "genisoimage -R -J", leftOut: [Array("long-link".utf8)])
    }

    @Test(arguments: ["rr-joliet", "genisoimage"])
    func fileContentsAreByteIdentical(image: String) throws {
        let fs = try ISO9660Fixtures.open(image == "rr-joliet" ? ISO9660Fixtures.rockRidgeJoliet() : ISO9660Fixtures.genisoimageRelocated())
        let guest = try ISO9660Walk.walk(fs)
        var compared = 0
        for (path, entry) in guest where entry.facts.mode & 0o170000 == 0o100000 {
            let data = try ISO9660Walk.readAll(fs.openFile(entry.node))
            let want = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ISO9660Fixtures.source + "/" + ISO9660Walk.text(path))))
            #expect(data == want, "\(ISO9660Walk.text(path))")
            compared += 1
        }
        #expect(compared >= 8)
        // Reads at odd offsets and lengths, across the end.
        let node = try #require(guest[Array("dir/random.bin".utf8)]?.node)
        let file = try fs.openFile(node)
        let want = try [UInt8](Data(contentsOf: URL(fileURLWithPath: ISO9660Fixtures.source + "/dir/random.bin")))
        for (offset, length) in [(0, 1), (2047, 2), (4095, 10_000), (99_990, 100), (100_000, 5), (150_000, 5)] {
            var buffer = [UInt8](repeating: 0xAA, count: length)
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: UInt64(offset)) }
            let expected = offset < want.count ? Array(want[offset ..< min(want.count, offset + length)]) : []
            #expect(Array(buffer.prefix(n)) == expected, "offset \(offset) length \(length)")
        }
        #expect(try file.dataRanges().map(\.length) == [UInt64(want.count)])
    }

    /// xorriso's own reading of the image (`-find / -exec lsdl`: mode, links, owner, size, target).
    @Test func rockRidgeMatchesXorrisoListing() throws {
        let image = try ISO9660Fixtures.rockRidgeJoliet()
        let fs = try ISO9660Fixtures.open(image)
        let guest = try ISO9660Walk.walk(fs)
        let text = try Shell.check("xorriso -indev \(Shell.quote(image)) -find / -exec lsdl 2>/dev/null")
        var compared = 0
        for line in text.split(separator: "\n") {
            // drwxr-xr-x    1 0        0               0 Dec  1 16:48 '/a' [-> 'target']
            guard let quote = line.firstIndex(of: "'") else { continue }
            let fields = line[..<quote].split(separator: " ")
            guard fields.count >= 8, let links = UInt32(fields[1]), let uid = UInt32(fields[2]), let gid = UInt32(fields[3]),
                  let size = UInt64(fields[4]) else { continue }
            var rest = String(line[line.index(after: quote)...])
            guard let end = rest.firstIndex(of: "'") else { continue }
            let path = String(rest[..<end])
            rest = String(rest[rest.index(after: end)...])
            guard path.hasPrefix("/"), !path.contains("\\") else { continue }   // escaped names are skipped
            let relative = Array(path.dropFirst().utf8)
            let entry = try #require(guest[relative], "\(path) is in xorriso's listing")
            let a = try fs.attributes(entry.node)
            #expect(Self.modeString(a.mode) == String(fields[0]), "\(path)")
            #expect(a.uid == uid && a.gid == gid, "\(path)")
            // (lsdl shows xorriso's own link count, not PX's: links are compared with the host instead.)
            _ = links
            if a.type == .regular { #expect(a.size == size, "\(path)") }
            if a.isSymlink, let arrow = rest.range(of: " -> '") {
                let target = rest[arrow.upperBound...].dropLast()
                #expect(try fs.readlink(entry.node) == Array(target.utf8), "\(path)")
            }
            compared += 1
        }
        #expect(compared >= 20)
    }

    /// `isoinfo -R -l` on the same image: permissions (isoinfo prints no setuid/sticky letters, a
    /// FIFO as 'f'), owners (printed in octal), file link counts, sizes (a directory's is its
    /// extent's length), symlink targets.
    @Test func rockRidgeMatchesIsoinfo() throws {
        let image = try ISO9660Fixtures.rockRidgeJoliet()
        let fs = try ISO9660Fixtures.open(image)
        let guest = try ISO9660Walk.walk(fs)
        let text = try Shell.check("isoinfo -R -l -i \(Shell.quote(image))")
        var dir = "/"
        var compared = 0
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Directory listing of ") { dir = String(line.dropFirst("Directory listing of ".count)); continue }
            guard let close = line.range(of: "]  ") else { continue }
            var name = String(line[close.upperBound...])
            var target: String?
            if let arrow = name.range(of: " -> ") { target = String(name[arrow.upperBound...]); name = String(name[..<arrow.lowerBound]) }
            if name.hasSuffix(" ") { name.removeLast() }
            guard name != ".", name != ".." else { continue }
            let f = line[..<close.lowerBound].split(separator: " ")
            guard f.count >= 5, let links = UInt32(f[1]), let uid = UInt32(f[2], radix: 8), let gid = UInt32(f[3], radix: 8),
                  let size = UInt64(f[4]) else { continue }
            let path = String((dir + name).dropFirst())
            let entry = try #require(guest[Array(path.utf8)], "\(path) from isoinfo")
            let a = try fs.attributes(entry.node)
            var want = Array(Self.modeString(a.mode & ~0o7000 | 0o000))
            if a.type == .fifo { want[0] = "f" }
            #expect(String(want) == String(f[0]), "\(path)")
            #expect(a.uid == uid && a.gid == gid, "\(path)")
            if !a.isDirectory { #expect(a.links == links, "\(path)") }
            if a.isDirectory || a.isRegular { #expect(a.size == size, "\(path)") }
            if let target { #expect(try fs.readlink(entry.node) == Array(target.utf8), "\(path)") }
            compared += 1
        }
        #expect(compared == guest.count - 1)
    }

    static func modeString(_ mode: UInt32) -> String {
        let type: Character
        switch NodeType(mode: mode) {
        case .directory: type = "d"
        case .symlink: type = "l"
        case .characterDevice: type = "c"
        case .blockDevice: type = "b"
        case .fifo: type = "p"
        case .socket: type = "s"
        default: type = "-"
        }
        var s = String(type)
        let chars: [Character] = ["r", "w", "x"]
        for i in 0..<9 { s.append(mode & (0o400 >> UInt32(i)) != 0 ? chars[i % 3] : "-") }
        var a = Array(s)
        if mode & 0o4000 != 0 { a[3] = a[3] == "x" ? "s" : "S" }
        if mode & 0o2000 != 0 { a[6] = a[6] == "x" ? "s" : "S" }
        if mode & 0o1000 != 0 { a[9] = a[9] == "x" ? "t" : "T" }
        return String(a)
    }

    /// Joliet alone: UCS-2 names (up to 103 characters with -joliet-long), the kernel's default
    /// modes (dr-xr-xr-x and -r-xr-xr-x), sizes as `isoinfo -J -l` lists them.
    @Test func jolietNamesAndDefaultModes() throws {
        let image = try ISO9660Fixtures.jolietOnly()
        let fs = try ISO9660Fixtures.open(image)
        guard case .joliet(let level) = fs.namespace else { Issue.record("namespace \(fs.namespace)"); return }
        #expect(level == 3)
        let guest = try ISO9660Walk.walk(fs)
        // isoinfo prints Joliet names in ISO 8859-1 (it has no UTF-8 charset); every name here fits it.
        let out = try Shell.run("isoinfo -J -l -i \(Shell.quote(image))")
        #expect(out.status == 0)
        let listing = ISOInfoListing.parse(String(data: out.stdout, encoding: .isoLatin1) ?? "")
        #expect(Set(guest.keys.filter { !$0.isEmpty }.map { "/" + ISO9660Walk.text($0) }) == Set(listing.keys.map { $0.hasSuffix(";1") ? String($0.dropLast(2)) : $0 }))
        for (path, entry) in guest where !path.isEmpty {
            let isDirectory = entry.facts.mode & 0o170000 == 0o040000
            #expect(entry.facts.mode == (isDirectory ? 0o040555 : 0o100555), "\(ISO9660Walk.text(path))")
            #expect(entry.facts.uid == 0 && entry.facts.gid == 0 && entry.facts.links == 1)
            if !isDirectory, let want = listing["/" + ISO9660Walk.text(path)] ?? listing["/" + ISO9660Walk.text(path) + ";1"] {
                #expect(entry.facts.size == want.size, "\(ISO9660Walk.text(path))")
            }
        }
        // Joliet lookups ignore case, as the kernel's (check=relaxed).
        #expect(try fs.lookup(fs.rootNode, Array("HELLO.TXT".utf8)) == guest[Array("hello.txt".utf8)]?.node)
        // Contents through the Joliet tree.
        let node = try #require(guest[Array("dir/random.bin".utf8)]?.node)
        #expect(try ISO9660Walk.readAll(fs.openFile(node)) == [UInt8](Data(contentsOf: URL(fileURLWithPath: ISO9660Fixtures.source + "/dir/random.bin"))))
    }

    /// Plain ISO 9660 names as the kernel maps them (map=normal: lower case, ";1" dropped).
    @Test(arguments: [1, 2])
    func plainNamesAsTheKernelMapsThem(level: Int) throws {
        let image = try ISO9660Fixtures.plain(level: level)
        let fs = try ISO9660Fixtures.open(image)
        #expect(fs.namespace == .plain)
        let guest = try ISO9660Walk.walk(fs)
        let listing = ISOInfoListing.parse(try Shell.check("isoinfo -l -i \(Shell.quote(image))"))
        func kernelName(_ path: String) -> String {
            path.split(separator: "/").map { component -> String in
                var c = component.lowercased()
                if c.hasSuffix(".;1") { c.removeLast(3) } else if c.hasSuffix(";1") { c.removeLast(2) }
                return c
            }.joined(separator: "/")
        }
        let expected = Dictionary(listing.map { (kernelName($0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(guest.keys.filter { !$0.isEmpty }.map(ISO9660Walk.text)) == Set(expected.keys))
        for (path, entry) in guest where !path.isEmpty {
            let want = try #require(expected[ISO9660Walk.text(path)])
            let isDirectory = entry.facts.mode & 0o170000 == 0o040000
            #expect(want.mode.hasPrefix("d") == isDirectory)
            #expect(entry.facts.mode == (isDirectory ? 0o040555 : 0o100555))
            if !isDirectory {
                #expect(entry.facts.size == want.size, "\(ISO9660Walk.text(path))")
                let data = try ISO9660Walk.readAll(fs.openFile(entry.node))
                #expect(UInt64(data.count) == want.size)
            }
        }
        if level == 1 { #expect(guest.keys.allSatisfy { $0.split(separator: 0x2F).allSatisfy { $0.count <= 12 } }) }
    }

    /// Level 3: a 4.5 GiB file is recorded as two sections (multi-extent records); it reads as one.
    @Test func multiExtentFileReadsWhole() throws {
        let image = try ISO9660Fixtures.level3Big()
        let fs = try ISO9660Fixtures.open(image)
        let listing = try Shell.check("isoinfo -l -i \(Shell.quote(image))")
        #expect(listing.components(separatedBy: "BIG.BIN;1").count - 1 >= 2, "several records for the big file")
        let node = try #require(try fs.lookup(fs.rootNode, Array("big.bin".utf8)))
        let a = try fs.attributes(node)
        #expect(a.size == ISO9660Fixtures.bigSize)
        #expect(a.blocks512 == (ISO9660Fixtures.bigSize + 511) / 512)
        #expect(try fs.entries(fs.rootNode).map { String(decoding: $0.name, as: UTF8.self) }.sorted() == ["big.bin", "small.txt"])
        let file = try fs.openFile(node)
        #expect(file.size == ISO9660Fixtures.bigSize)
        for (offset, text) in ISO9660Fixtures.bigMarkers {
            var buffer = [UInt8](repeating: 0, count: text.utf8.count + 4)
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
            #expect(Array(buffer.prefix(text.utf8.count)) == Array(text.utf8), "marker at \(offset)")
            #expect(n == min(buffer.count, Int(ISO9660Fixtures.bigSize - offset)))
        }
        var zeros = [UInt8](repeating: 0xFF, count: 4096)
        _ = try zeros.withUnsafeMutableBytes { try file.read(into: $0, at: 3 << 30) }
        #expect(zeros.allSatisfy { $0 == 0 })
        let lsdl = try Shell.check("xorriso -indev \(Shell.quote(image)) -find /big.bin -exec lsdl 2>/dev/null")
        #expect(lsdl.contains(" \(ISO9660Fixtures.bigSize) "))
    }

    /// An isohybrid image (an MBR and GPT in the System Area) with El Torito BIOS and UEFI entries.
    @Test func hybridImageWithElTorito() throws {
        let image = try ISO9660Fixtures.hybridBoot()
        let bytes = try [UInt8](FileHandle(forReadingFrom: URL(fileURLWithPath: image)).readData(ofLength: 512))
        #expect(bytes[510] == 0x55 && bytes[511] == 0xAA, "an MBR at sector 0")
        let fs = try ISO9660Fixtures.open(image)
        #expect(fs.label == "HYBRID")
        let readme = try #require(try fs.lookup(fs.rootNode, Array("README".utf8)))
        #expect(try ISO9660Walk.readAll(fs.openFile(readme)) == Array("readme\n".utf8))
        // xorriso -report_el_torito plain: "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4          49"
        let report = try Shell.check("xorriso -indev \(Shell.quote(image)) -report_el_torito plain 2>/dev/null")
        var expected: [(String, Bool, String, UInt16, UInt16, UInt32)] = []
        for line in report.split(separator: "\n") where line.hasPrefix("El Torito boot img :") {
            let f = line.dropFirst("El Torito boot img :".count).split(separator: " ")
            guard f.count >= 8 else { continue }
            expected.append((String(f[1]), f[2] == "y", String(f[3]), UInt16(f[4].dropFirst(2), radix: 16) ?? 0xFFFF,
                             UInt16(f[6]) ?? 0, UInt32(f[7]) ?? 0))
        }
        #expect(expected.count == 2)
        #expect(fs.bootEntries.count == expected.count)
        for (entry, want) in zip(fs.bootEntries, expected) {
            #expect(entry.platformName == want.0)
            #expect(entry.bootable == want.1)
            #expect(entry.emulation == (want.2 == "none" ? .noEmulation : nil))
            #expect(entry.loadSegment == want.3)
            #expect(entry.sectorCount == want.4)
            #expect(entry.loadRBA == want.5)
        }
        #expect(fs.warnings.isEmpty)
    }

    @Test(arguments: ["rr-joliet", "genisoimage", "joliet", "plain-1", "hybrid"])
    func labelAndUUIDAsBlkidShowsThem(image name: String) throws {
        let image: String
        switch name {
        case "rr-joliet": image = try ISO9660Fixtures.rockRidgeJoliet()
        case "genisoimage": image = try ISO9660Fixtures.genisoimageRelocated()
        case "joliet": image = try ISO9660Fixtures.jolietOnly()
        case "hybrid": image = try ISO9660Fixtures.hybridBoot()
        default: image = try ISO9660Fixtures.plain(level: 1)
        }
        let fs = try ISO9660Fixtures.open(image)
        let udev = try Shell.check("blkid -p -o udev \(Shell.quote(image))")
        func value(_ key: String) -> String? {
            udev.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        #expect(fs.uuid == value("ID_FS_UUID"))
        #expect(fs.label == (value("ID_FS_LABEL_ENC").map(Self.unescapeUdev) ?? ""))
    }

    /// blkid's udev output escapes spaces and such as \x20.
    static func unescapeUdev(_ s: String) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let c = bytes.first {
            if c == 0x5C, bytes.count >= 4, bytes[bytes.startIndex + 1] == 0x78,
               let v = UInt8(String(decoding: bytes[(bytes.startIndex + 2) ..< (bytes.startIndex + 4)], as: UTF8.self), radix: 16) {
                out.append(v); bytes = bytes.dropFirst(4)
            } else { out.append(c); bytes = bytes.dropFirst() }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// statfs as the kernel's isofs_statfs gives it: the PVD's volume space size, nothing free.
    @Test func usageAsTheKernelReportsIt() throws {
        let image = try ISO9660Fixtures.rockRidgeJoliet()
        let fs = try ISO9660Fixtures.open(image)
        let info = try Shell.check("isoinfo -d -i \(Shell.quote(image))")
        let size = try #require(info.split(separator: "\n").first { $0.hasPrefix("Volume size is: ") }.flatMap { UInt64($0.dropFirst(16)) })
        let usage = try fs.usage()
        #expect(usage == FilesystemUsage(blockSize: 2048, totalBlocks: size, freeBlocks: 0, availableBlocks: 0,
                                         totalInodes: 0, freeInodes: 0, maxNameLength: 255))
        #expect(fs.blockSize == 2048)
        #expect(fs.declaredSize == size * 2048)
        #expect(try fs.xattrs(fs.rootNode).isEmpty)
        #expect(!fs.isWritable)
    }

    @Test func errorsCarryErrnos() throws {
        let fs = try ISO9660Fixtures.open(ISO9660Fixtures.rockRidgeJoliet())
        let hello = try #require(try fs.lookup(fs.rootNode, Array("hello.txt".utf8)))
        #expect(try fs.lookup(fs.rootNode, Array("missing".utf8)) == nil)
        #expect(throws: ImageError.self) { try fs.entries(hello) }
        #expect((try? fs.entries(hello)) == nil)
        do { _ = try fs.entries(hello) } catch let e as ImageError { #expect(e.errno == .notDirectory) }
        do { _ = try fs.readlink(hello) } catch let e as ImageError { #expect(e.errno == .invalidArgument) }
        do { _ = try fs.openFile(fs.rootNode) } catch let e as ImageError { #expect(e.errno == .isDirectory) }
    }
}
