import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import SystemPackage
import Testing
import TestSupport

/// Writing: a workload through the `WritableGuestFilesystem` API on fresh FAT12/16/32 images,
/// then `fsck.fat -n` must be clean, `mcopy` must read back exactly what the model says was
/// written, `mdir` must show the short names the kernel's vfat would have made, and the driver
/// must read the same tree again after reopening.
@Suite(.enabled(if: VfatFixtures.haveTools)) struct VfatWriteTests {
    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }
    static let file = NewInode(mode: 0o100644, uid: 0, gid: 0)
    static let folder = NewInode(mode: 0o040755, uid: 0, gid: 0)

    /// What the tree should hold: path → contents (nil for directories).
    final class Model {
        var tree: [String: [UInt8]?] = [:]
    }

    func write(_ fs: VfatFilesystem, _ node: UInt64, _ data: [UInt8], at offset: UInt64 = 0) throws {
        let n = try data.withUnsafeBytes { try fs.write(node, at: offset, $0) }
        #expect(n == data.count)
    }

    func create(_ fs: VfatFilesystem, _ model: Model, _ dir: UInt64, _ dirPath: String, _ name: String, _ data: [UInt8]) throws -> UInt64 {
        let node = try fs.createNode(in: dir, name: Self.b(name), Self.file)
        if !data.isEmpty { try write(fs, node, data) }
        model.tree[dirPath.isEmpty ? name : dirPath + "/" + name] = .some(data)
        return node
    }

    func mkdir(_ fs: VfatFilesystem, _ model: Model, _ dir: UInt64, _ dirPath: String, _ name: String) throws -> UInt64 {
        let node = try fs.makeDirectory(in: dir, name: Self.b(name), Self.folder)
        model.tree[dirPath.isEmpty ? name : dirPath + "/" + name] = .some(nil)
        return node
    }

    static func pattern(_ n: Int, _ seed: UInt8) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

    @Test(arguments: ["floppy", "fat12", "fat16", "fat32"])
    func workloadLeavesACleanVolumeMtoolsReads(kind: String) throws {
        let dir = try TempDir("imagemount-vfat")
        let image = dir.file("fs.img")
        try VfatFixtures.mkfs(kind, at: image)
        let model = Model()
        let fs = try VfatFilesystem(device: RawImage(path: image, writable: true), writable: true)
        let root = fs.rootNode
        let cs = Int(fs.blockSize)
        let big = kind != "floppy"

        // Names of every kind, and the short names the kernel makes for them.
        let hello = try create(fs, model, root, "", "hello.txt", Array("hello, world\n".utf8))
        _ = try create(fs, model, root, "", "SHORT.TXT", Array("short\n".utf8))
        _ = try create(fs, model, root, "", "A long file name.text", Self.pattern(3 * cs + 5, 1))
        for i in 1...11 { _ = try create(fs, model, root, "", "longfilename\(i).txt", Array("\(i)\n".utf8)) }
        _ = try create(fs, model, root, "", "mixed+name;with=odd[chars].bin", Self.pattern(100, 2))
        _ = try create(fs, model, root, "", "ünïcødé ファイル.txt", Array("unicode\n".utf8))
        _ = try create(fs, model, root, "", "empty", [])
        #expect(VfatFixtures.errno { _ = try fs.createNode(in: root, name: Self.b("HELLO.TXT"), Self.file) } == .fileExists)
        #expect(VfatFixtures.errno { _ = try fs.createNode(in: root, name: Self.b("bad:name"), Self.file) } == .invalidArgument)
        #expect(VfatFixtures.errno { _ = try fs.createNode(in: root, name: Array(repeating: 0x61, count: 256), Self.file) } == .fileNameTooLong)

        // A deep tree with long directory names, and a directory that grows past one cluster.
        var parent = root, path = ""
        for level in 0..<12 {
            let name = "level \(level) directory with a long name"
            parent = try mkdir(fs, model, parent, path, name)
            path = path.isEmpty ? name : path + "/" + name
        }
        _ = try create(fs, model, parent, path, "leaf.txt", Array("deep\n".utf8))
        let many = try mkdir(fs, model, root, "", "many")
        for i in 0 ..< (big ? 120 : 30) { _ = try create(fs, model, many, "many", "an entry with a long name \(i)", Array("\(i)".utf8)) }

        // Data: a write past the end zero-fills the gap; truncate grows with zeros and shrinks.
        let data = try create(fs, model, root, "", "data.bin", Self.pattern(1000, 3))
        try write(fs, data, Self.pattern(10, 4), at: UInt64(2 * cs + 7))
        var expected = Self.pattern(1000, 3) + [UInt8](repeating: 0, count: 2 * cs + 7 - 1000) + Self.pattern(10, 4)
        model.tree["data.bin"] = .some(expected)
        #expect(try VfatFixtures.readAll(fs, data) == expected)
        try fs.truncate(data, to: UInt64(5 * cs))
        expected += [UInt8](repeating: 0, count: 5 * cs - expected.count)
        try fs.truncate(data, to: UInt64(cs + 1))
        expected = Array(expected.prefix(cs + 1))
        model.tree["data.bin"] = .some(expected)
        #expect(try VfatFixtures.readAll(fs, data) == expected)
        let gone = try create(fs, model, root, "", "truncated to nothing", Self.pattern(3 * cs, 5))
        try fs.truncate(gone, to: 0)
        model.tree["truncated to nothing"] = .some([])

        // fallocate: mode 0 grows with zeros; keep-size allocates past the end, freed at release.
        let pre = try create(fs, model, root, "", "prealloc", Array("p".utf8))
        try fs.allocate(pre, at: 0, length: UInt64(4 * cs), keepSize: true)
        #expect(try fs.attributes(pre).size == 1)
        try fs.allocate(pre, at: 0, length: 10, keepSize: false)
        model.tree["prealloc"] = .some(Array("p".utf8) + [UInt8](repeating: 0, count: 9))
        #expect(VfatFixtures.errno { try fs.punchHole(pre, at: 0, length: 1) } == .notSupported)

        // Rename: in place, across directories, replacing, NOREPLACE, EXCHANGE, a directory.
        try fs.rename(from: root, Self.b("hello.txt"), to: root, Self.b("Hello renamed.txt"), flags: [])
        model.tree["Hello renamed.txt"] = model.tree.removeValue(forKey: "hello.txt")
        #expect(try fs.lookup(root, Self.b("hello renamed.TXT")) == hello)
        #expect(try VfatFixtures.readAll(fs, hello) == Array("hello, world\n".utf8))
        try fs.rename(from: root, Self.b("Hello renamed.txt"), to: many, Self.b("moved.txt"), flags: [])
        model.tree["many/moved.txt"] = model.tree.removeValue(forKey: "Hello renamed.txt")
        #expect(try fs.attributes(hello).size == 13)
        #expect(VfatFixtures.errno { try fs.rename(from: root, Self.b("SHORT.TXT"), to: root, Self.b("empty"), flags: .noReplace) } == .fileExists)
        try fs.rename(from: root, Self.b("SHORT.TXT"), to: root, Self.b("empty"), flags: [])
        model.tree["empty"] = model.tree.removeValue(forKey: "SHORT.TXT")
        try fs.rename(from: root, Self.b("longfilename1.txt"), to: root, Self.b("longfilename2.txt"), flags: .exchange)
        let (one, two) = (model.tree["longfilename1.txt"]!, model.tree["longfilename2.txt"]!)
        model.tree["longfilename1.txt"] = two; model.tree["longfilename2.txt"] = one
        let deepTop = "level 0 directory with a long name"
        try fs.rename(from: root, Self.b(deepTop), to: many, Self.b("deep moved"), flags: [])
        for key in model.tree.keys where key == deepTop || key.hasPrefix(deepTop + "/") {
            model.tree["many/deep moved" + key.dropFirst(deepTop.count)] = model.tree.removeValue(forKey: key)
        }
        let moved = try #require(try fs.lookup(many, Self.b("deep moved")))
        #expect(VfatFixtures.errno { try fs.rename(from: many, Self.b("deep moved"), to: moved, Self.b("x"), flags: []) } == .invalidArgument)

        // Unlink and rmdir; an unlinked file still open reads until released.
        let held = try create(fs, model, root, "", "held open", Self.pattern(2 * cs, 6))
        fs.setNodeInUse { $0 == held }
        try fs.unlink(in: root, name: Self.b("held open"))
        model.tree["held open"] = nil
        #expect(try fs.lookup(root, Self.b("held open")) == nil)
        #expect(try VfatFixtures.readAll(fs, held) == Self.pattern(2 * cs, 6))
        fs.setNodeInUse { _ in false }
        try fs.releaseNode(held)
        try fs.unlink(in: root, name: Self.b("longfilename11.txt"))
        model.tree["longfilename11.txt"] = nil
        #expect(VfatFixtures.errno { try fs.removeDirectory(in: root, name: Self.b("many")) } == .directoryNotEmpty)
        #expect(VfatFixtures.errno { try fs.unlink(in: root, name: Self.b("many")) } == .isDirectory)
        let emptyDir = try mkdir(fs, model, root, "", "to be removed")
        _ = emptyDir
        try fs.removeDirectory(in: root, name: Self.b("to be removed"))
        model.tree["to be removed"] = nil

        // What FAT cannot hold.
        #expect(VfatFixtures.errno { _ = try fs.makeSymlink(in: root, name: Self.b("l"), target: Self.b("x"), uid: 0, gid: 0) } == .notPermitted)
        #expect(VfatFixtures.errno { try fs.link(data, into: root, name: Self.b("hard")) } == .notPermitted)
        #expect(VfatFixtures.errno { _ = try fs.createNode(in: root, name: Self.b("fifo"), NewInode(mode: 0o010644, uid: 0, gid: 0)) } == .notPermitted)
        #expect(VfatFixtures.errno { try fs.setAttributes(data, AttributeChanges(uid: 1000)) } == .notPermitted)
        #expect(VfatFixtures.errno { try fs.setAttributes(data, AttributeChanges(mode: 0o4755)) } == .notPermitted)
        #expect(VfatFixtures.errno { try fs.setXattr(data, name: "user.x", value: [1], mode: .createOrReplace) } == .notSupported)
        #expect(VfatFixtures.errno { _ = try [UInt8](repeating: 0, count: 1).withUnsafeBytes { try fs.write(data, at: 1 << 32, $0) } } == .fileTooLarge)
        #expect(VfatFixtures.errno { try fs.truncate(data, to: 5 << 30) } == .fileTooLarge)
        #expect(VfatFixtures.errno { try fs.allocate(data, at: 0, length: 1 << 32, keepSize: false) } == .fileTooLarge)

        // chmod toggles the read-only attribute; other modes are ignored; times to 2 s and a day.
        // (fat_sanitize_mode: the r and x bits must stay what the masks give, so 0444 is ignored.)
        try fs.setAttributes(data, AttributeChanges(mode: 0o444))
        #expect(try fs.attributes(data).mode == 0o100755)
        try fs.setAttributes(data, AttributeChanges(mode: 0o555))
        #expect(try fs.attributes(data).mode == 0o100555)
        try fs.setAttributes(data, AttributeChanges(mode: 0o600))
        #expect(try fs.attributes(data).mode == 0o100555)
        try fs.setAttributes(data, AttributeChanges(mode: 0o755))
        #expect(try fs.attributes(data).mode == 0o100755)
        let when = Timestamp(seconds: 1_700_000_001, nanoseconds: 500)
        try fs.setAttributes(data, AttributeChanges(accessTime: .at(when), modificationTime: .at(when)))
        let a = try fs.attributes(data)
        #expect(a.mtime == Timestamp(seconds: 1_700_000_000, nanoseconds: 0))
        #expect(a.atime == Timestamp(seconds: 1_700_000_001 / 86_400 * 86_400, nanoseconds: 0))

        // Fill to ENOSPC: short writes, then ENOSPC, and no damage.
        let filler = try create(fs, model, root, "", "filler", [])
        var written: [UInt8] = []
        let chunk = Self.pattern(256 << 10, 7)
        var offset: UInt64 = 0
        var sawNoSpace = false
        for _ in 0 ..< 4096 {
            do {
                let n = try chunk.withUnsafeBytes { try fs.write(filler, at: offset, $0) }
                written += chunk.prefix(n)
                offset += UInt64(n)
                if n < chunk.count { continue }
            } catch let e as ImageError where e.errno == .noSpace {
                sawNoSpace = true
                break
            }
        }
        #expect(sawNoSpace)
        #expect(try fs.usage().freeBlocks == 0)
        #expect(VfatFixtures.errno { _ = try fs.makeDirectory(in: root, name: Self.b("no room"), Self.folder) } == .noSpace)
        model.tree["filler"] = .some(written)
        #expect(try fs.attributes(filler).size == UInt64(written.count))

        try fs.close()
        try VfatFixtures.expectClean(image)
        // The dirty bit is off again.
        let bootSector = try RawImage(path: image, writable: false).readBytes(at: 0, count: 512)
        #expect(bootSector[kind == "fat32" ? 65 : 37] & 1 == 0)

        // mcopy reads back exactly what was written, and mdir lists exactly those names.
        let out = dir.file("out")
        try VfatFixtures.check("mkdir \(Shell.quote(out)) && mcopy -s -n -i \(Shell.quote(image)) '::/*' \(Shell.quote(out))/")
        for (path, content) in model.tree {
            if let content {
                let got = FileManager.default.contents(atPath: out + "/" + path).map { [UInt8]($0) }
                #expect(got == content, "\(path): \(got?.count ?? -1) bytes, wanted \(content.count)")
            } else {
                var isDir: ObjCBool = false
                #expect(FileManager.default.fileExists(atPath: out + "/" + path, isDirectory: &isDir) && isDir.boolValue, "\(path)")
            }
        }
        #expect(Set(try VfatFixtures.mdirPaths(image)) == Set(model.tree.keys))
        let listing = try VfatFixtures.check("mdir -a -i \(Shell.quote(image)) ::/")
        for short in ["LONGFI~1 TXT", "LONGFI~9 TXT", "ALONGF~1 TEX", "MIXED_~1 BIN"] {
            #expect(listing.contains(short), "\(short) in \(listing)")
        }
        #expect(listing.contains("EMPTY"))

        // Our own driver reads the same tree back.
        let again = try VfatFilesystem(device: RawImage(path: image, writable: false))
        defer { try? again.close() }
        let read = try VfatFixtures.read(again)
        #expect(Set(read.keys) == Set(model.tree.keys))
        for (path, content) in model.tree { #expect(read[path] == .some(content), "\(path)") }
    }

    @Test func dirtyBitIsSetWhileWritingAndClearedAtClose() throws {
        let dir = try TempDir("imagemount-vfat")
        let image = dir.file("fs.img")
        try VfatFixtures.mkfs("fat32", at: image)
        let fs = try VfatFilesystem(device: RawImage(path: image, writable: true), writable: true)
        _ = try fs.createNode(in: fs.rootNode, name: Self.b("x"), Self.file)
        try fs.sync()
        let raw = try RawImage(path: image, writable: false)
        #expect(try raw.readBytes(at: 0, count: 512)[65] & 1 == 1)
        try fs.close()
        #expect(try raw.readBytes(at: 0, count: 512)[65] & 1 == 0)
        try VfatFixtures.expectClean(image)
        // Opened read-only: not one byte written.
        let before = try VfatFixtures.check("sha256sum \(Shell.quote(image))")
        let ro = try VfatFilesystem(device: RawImage(path: image, writable: false))
        #expect(VfatFixtures.errno { _ = try ro.createNode(in: ro.rootNode, name: Self.b("y"), Self.file) } == .readOnlyFileSystem)
        try ro.close()
        #expect(try VfatFixtures.check("sha256sum \(Shell.quote(image))") == before)
        // Opened writable, reads and releases of named nodes write nothing either.
        let rw = try VfatFilesystem(device: RawImage(path: image, writable: true), writable: true)
        let x = try #require(try rw.lookup(rw.rootNode, Self.b("x")))
        _ = try rw.attributes(x)
        try rw.releaseNode(x)
        try rw.sync()
        try rw.close()
        #expect(try VfatFixtures.check("sha256sum \(Shell.quote(image))") == before)
    }
}
