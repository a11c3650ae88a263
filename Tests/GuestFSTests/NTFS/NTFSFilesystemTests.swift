import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSNTFS
import GuestFS
import Testing
import TestSupport

/// The NTFS driver (libntfs-3g over our block devices) read through the GuestFilesystem API and
/// compared with ntfs-3g's own read-only FUSE mount of the same image: names (POSIX, Win32,
/// Unicode, long; 8.3 aliases hidden), types, modes, sizes, link counts, MFT record numbers,
/// times to 100 ns, symlink targets, bytes of every file, named streams as user.* xattrs,
/// statfs; then the same volume in a partition and in a qcow2 image, options, and a closed volume.
/// Writes are NTFSWriteTests'.
@Suite(.serialized) struct NTFSFilesystemTests {
    static let images = Result { try NTFSImages() }

    static func open(_ path: String, options: NTFSMountOptions = NTFSMountOptions()) throws -> NTFSFilesystem {
        try NTFSFilesystem(device: try RawImage(path: path, writable: false), options: options)
    }

    /// One line per entry, in NTFSImages.listing's format, from the driver.
    static func walk(_ fs: any GuestFilesystem) throws -> (listing: String, files: [String: UInt64], links: [String: UInt64]) {
        var lines: [String] = []
        var files: [String: UInt64] = [:]
        var links: [String: UInt64] = [:]
        func time(_ t: Timestamp) -> String { "\(t.seconds)." + String(format: "%09d", t.nanoseconds) + "0" }
        func visit(_ dir: UInt64, _ prefix: String, depth: Int) throws {
            #expect(depth < 64)
            for entry in try fs.entries(dir) {
                let name = String(decoding: entry.name, as: UTF8.self)
                let path = prefix + "/" + name
                let a = try fs.attributes(entry.node)
                #expect(a.type == entry.type, "\(path): listed as \(entry.type), stat says \(a.type)")
                #expect(try fs.lookup(dir, entry.name) == entry.node, "\(path)")
                let kind: String
                switch a.type {
                case .directory: kind = "d"
                case .regular: kind = "f"
                case .symlink: kind = "l"
                case .fifo: kind = "p"
                default: kind = "?"
                }
                let target = a.isSymlink ? String(decoding: try fs.readlink(entry.node), as: UTF8.self) : ""
                lines.append([kind, String(a.permissions, radix: 8), "\(a.uid):\(a.gid)", "\(a.size)", "\(a.links)", "\(a.node)",
                              time(a.mtime), time(a.atime), time(a.ctime), "\(a.blocks512)", path, target].joined(separator: "\t"))
                if a.isRegular { files[path] = entry.node }
                if a.isSymlink { links[path] = entry.node }
                if a.isDirectory { try visit(entry.node, path, depth: depth + 1) }
            }
        }
        try visit(fs.rootNode, ".", depth: 0)
        return (lines.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.joined(separator: "\n") + "\n", files, links)
    }

    static func readAll(_ file: any GuestFile, chunk: Int = 1 << 20) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(file.size))
        var at = 0
        while at < out.count {
            let n = try out.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[at ..< min(at + chunk, $0.count)]), at: UInt64(at)) }
            guard n > 0 else { break }
            at += n
        }
        return Array(out.prefix(at))
    }

    @Test func treeMatchesNtfs3g() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        #expect(fs.typeName == "ntfs" && fs.rootNode == 5 && !fs.isWritable)
        #expect(fs.label == NTFSImages.label)
        let ours = try Self.walk(fs)
        let oracle = try images.withOracle { try NTFSImages.listing($0) }
        let (mine, theirs) = (Set(ours.listing.split(separator: "\n")), Set(oracle.split(separator: "\n")))
        #expect(ours.listing == oracle, "only ours: \(mine.subtracting(theirs).sorted()) only ntfs-3g: \(theirs.subtracting(mine).sorted())")
        // What the fixture put there is really there (the comparison is not of two empty trees).
        for path in ["./a.txt", "./été ünï ☃.txt", "./日本語のファイル名.txt", "./\(NTFSImages.longName)", "./Long File Name.txt",
                     "./deep/1/2/3/4/5/6/7/8/9/leaf.txt", "./comp/text.txt", "./sparse.bin", "./big.bin", "./many/file-\(NTFSImages.manyCount)"] {
            #expect(ours.files[path] != nil, "\(path) missing")
        }
        #expect(ours.links.count == 4)   // three Interix symlinks ntfs-3g made, one reparse point
        #expect(!ours.listing.contains("LONGFI~1"), "the 8.3 alias is listed")
        #expect(!ours.listing.contains("$MFT"), "a metafile is listed")
        #expect(ours.listing.split(separator: "\n").filter { $0.contains("\t./many/") }.count == NTFSImages.manyCount)
        #expect(ours.listing.contains("\t2\t") , "the hard link count is not shown")
    }

    @Test func fileBytesMatchNtfs3g() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        let ours = try Self.walk(fs)
        try images.withOracle { mnt in
            var compared = 0
            for (path, node) in ours.files where !path.hasPrefix("./many/") || path.hasSuffix("-7") {
                let want = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mnt + "/" + path)))
                // Odd-sized chunks cross compression units and sparse runs at unaligned offsets.
                let got = try Self.readAll(try fs.openFile(node), chunk: 65_537)
                #expect(got == want, "\(path)")
                compared += 1
            }
            #expect(compared > 10)
        }
    }

    @Test func compressedAndSparseFiles() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        let compDir = try #require(try fs.lookup(fs.rootNode, Array("comp".utf8)))
        let comp = try #require(try fs.lookup(compDir, Array("text.txt".utf8)))
        let a = try fs.attributes(comp)
        #expect(a.size == 3_000_000 && a.blocks512 < 3_000_000 / 512 / 4, "not compressed: \(a.blocks512) blocks")
        let text = try Self.readAll(try fs.openFile(comp))
        let line = Array("compressible line of text\n".utf8)
        #expect(text.count == 3_000_000 && Array(text.prefix(line.count)) == line && Array(text[line.count * 1000 ..< line.count * 1001]) == line)
        let sparse = try #require(try fs.lookup(fs.rootNode, Array("sparse.bin".utf8)))
        let file = try fs.openFile(sparse)
        let ranges = try file.dataRanges()
        #expect(file.size == 10 * 1024 * 1024 + 4)
        // Holes are not data: the runs cover the written middle and tail only.
        #expect(!ranges.isEmpty && ranges.reduce(0) { $0 + $1.length } < 1 << 20, "\(ranges)")
        #expect(ranges.contains { $0.offset <= 5_000_000 && $0.offset + $0.length >= 5_000_006 })
        var middle = [UInt8](repeating: 0xFF, count: 10)
        let n = try middle.withUnsafeMutableBytes { try file.read(into: $0, at: 4_999_998) }
        #expect(n == 10 && middle == [0, 0] + Array("middle".utf8) + [0, 0])
    }

    @Test func streamsAreUserXattrs() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        let node = try #require(try fs.lookup(fs.rootNode, Array("streams.txt".utf8)))
        let xattrs = try fs.xattrs(node).sorted { $0.name < $1.name }
        #expect(xattrs == [Xattr(name: "user.second", value: Array("another".utf8)), Xattr(name: "user.stream", value: Array("stream value".utf8))])
        #expect(try fs.xattr(node, name: "user.stream") == Array("stream value".utf8))
        #expect(try fs.xattr(node, name: "user.none") == nil)
        #expect(try fs.xattrs(fs.rootNode).isEmpty)
        let oracle = try images.withOracle { try Shell.check("getfattr --absolute-names -d \(Shell.quote($0 + "/streams.txt"))") }
        #expect(oracle.contains("user.stream=\"stream value\"") && oracle.contains("user.second=\"another\""), "\(oracle)")
        // The data of the file is not a stream.
        #expect(try Self.readAll(try fs.openFile(node)) == Array("body\n".utf8))
    }

    @Test func statfsMatchesNtfs3g() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        defer { try? fs.close() }
        let u = try fs.usage()
        let oracle = try images.withOracle { try Shell.check("stat -f -c '%S %b %f %a %c %d %l' \(Shell.quote($0))") }
        #expect("\(u.blockSize) \(u.totalBlocks) \(u.freeBlocks) \(u.availableBlocks) \(u.totalInodes) \(u.freeInodes) \(u.maxNameLength)\n" == oracle)
    }

    @Test func ownerAndMaskOptions() throws {
        let images = try Self.images.get()
        let options = try NTFSMountOptions(parsing: ["uid=1000,gid=100,fmask=133,dmask=022"])
        let fs = try Self.open(images.image, options: options)
        defer { try? fs.close() }
        let file = try fs.attributes(#require(try fs.lookup(fs.rootNode, Array("a.txt".utf8))))
        let dir = try fs.attributes(#require(try fs.lookup(fs.rootNode, Array("deep".utf8))))
        #expect(file.mode == 0o100644 && file.uid == 1000 && file.gid == 100)
        #expect(dir.mode == 0o040755)
        // The same options on ntfs-3g's own mount.
        let mnt = try TempDir("imagemount-ntfs-opts")
        try NTFSImages.mountNtfs3g(images.image, at: mnt.path, options: "ro,uid=1000,gid=100,fmask=133,dmask=022")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(mnt.path))") }
        #expect(try Shell.check("stat -c '%f %u %g' \(Shell.quote(mnt.file("a.txt"))) \(Shell.quote(mnt.file("deep")))")
                == "81a4 1000 100\n41ed 1000 100\n")
        #expect(throws: ImageError.self) { try NTFSMountOptions(parsing: ["umask=999"]) }
    }

    @Test func partitionedAndQcow2ImagesShowTheSameVolume() throws {
        let images = try Self.images.get()
        let whole = try Self.open(images.image)
        let want = try Self.walk(whole).listing
        try whole.close()
        for image in [images.partitioned, images.qcow2] {
            let guest = try Guest(drives: [DriveSpec(path: image)])
            let name = image == images.partitioned ? "/dev/sda1" : "/dev/sda"
            let device = try guest.device(named: name)
            #expect(device.content.type == "ntfs" && device.content.label == NTFSImages.label, "\(image)")
            let blkid = try Shell.check("blkid -p -o value -s UUID \(Shell.quote(images.image))").trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(device.content.uuid == blkid)
            let fs = try FilesystemRegistry.open(device, writable: false)
            #expect(try Self.walk(fs).listing == want, "\(image)")
            try fs.close()
        }
    }

    /// Sizes past NTFSBootSector's bounds are refused before libntfs-3g mounts (it would
    /// allocate a record buffer of the declared size: 2 GiB for 0xE1 at 0x40).
    @Test func outOfBoundsBootSectorSizes() throws {
        let images = try Self.images.get()
        let dir = try TempDir("ntfs-boot")
        for (offset, byte, words) in [(0x40, UInt8(0xE1), "MFT records of 2147483648 bytes"), (0x44, 0xE1, "index records of 2147483648 bytes"),
                                      (0x0D, 0xF3, "clusters of 4194304 bytes"), (0x0C, 0x00, "0 bytes per sector")] {
            let bad = dir.file("bad-\(offset).img")
            try Shell.check("cp --sparse=always \(Shell.quote(images.image)) \(Shell.quote(bad))")
            let file = try RawImage(path: bad, writable: true)
            try file.writeBytes([byte], at: UInt64(offset))
            try file.flush()
            let error = #expect(throws: ImageError.self) { _ = try Self.open(bad) }
            #expect(error?.structure == "NTFS boot sector" && error?.reason.contains(words) == true, "\(String(describing: error))")
        }
        // The bounds let real volumes through: this one has 1 KiB records and 4 KiB index records.
        #expect(try Self.open(images.image).blockSize > 0)
    }

    @Test func closedVolumeFailsCleanly() throws {
        let images = try Self.images.get()
        let fs = try Self.open(images.image)
        let node = try #require(try fs.lookup(fs.rootNode, Array("a.txt".utf8)))
        let file = try fs.openFile(node)
        try fs.close()
        try fs.close()
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(throws: ImageError.self) { _ = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 0) } }
        #expect(throws: ImageError.self) { _ = try fs.attributes(node) }
    }
}
