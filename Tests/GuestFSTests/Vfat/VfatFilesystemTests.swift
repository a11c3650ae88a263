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

/// Reading: images made by mkfs.vfat and filled by mcopy, read through `VfatFilesystem` and
/// compared with the source tree (names, types, contents, mtimes to FAT's 2 s) and with what
/// `mdir -/ -a -b` lists; label, UUID (blkid), statfs figures and the kernel's modes.
@Suite(.enabled(if: VfatFixtures.haveTools)) struct VfatFilesystemTests {
    @Test(arguments: ["floppy", "fat12", "fat16", "fat32"])
    func treeMatchesSourceAndMtools(kind: String) throws {
        let dir = try TempDir("imagemount-vfat")
        let (image, tree, source) = try VfatFixtures.filled(kind, in: dir)
        let fs = try VfatFilesystem(device: RawImage(path: image, writable: false))
        defer { try? fs.close() }
        #expect(fs.fatType == (kind == "fat32" ? .fat32 : kind == "fat16" ? .fat16 : .fat12))
        let read = try VfatFixtures.read(fs)
        #expect(Set(read.keys) == Set(tree.keys))
        for (path, data) in tree {
            #expect(read[path] == .some(data), "\(path)")
        }
        // mdir shows short-only names with code page 437 case rules of its own: compare folded.
        let listed = try VfatFixtures.mdirPaths(image).map { $0.lowercased() }
        #expect(Set(listed) == Set(read.keys.map { $0.lowercased() }))
        // mtimes: mcopy -m kept the host's, FAT keeps them to 2 s.
        for path in ["readme.txt", "data/r65537", "Dir With A Long Name/inner file.txt"] {
            let host = try FileManager.default.attributesOfItem(atPath: source + "/" + path)[.modificationDate] as! Date
            let node = try lookupPath(fs, path)
            let a = try fs.attributes(node)
            #expect(abs(Double(a.mtime.seconds) - host.timeIntervalSince1970) < 2.01, "\(path)")
            #expect(a.ctime == a.mtime)
            #expect(a.atime.seconds % 86_400 == 0)
        }
    }

    /// The FUSE server reads in parallel: reads of several files from several threads at once,
    /// while another thread writes a different file.
    @Test func parallelReadsDuringWrites() throws {
        let dir = try TempDir("imagemount-vfat")
        let (image, tree, _) = try VfatFixtures.filled("fat32", in: dir)
        let fs = try VfatFilesystem(device: RawImage(path: image, writable: true), writable: true)
        let paths = ["data/three-mb.bin", "data/one-mb-plus-3.bin", "data/r65537", "readme.txt"]
        let nodes = try paths.map { try lookupPath(fs, $0) }
        let other = try fs.createNode(in: fs.rootNode, name: Array("scratch".utf8), NewInode(mode: 0o100644, uid: 0, gid: 0))
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 9) { i in
            if i == 8 {
                let chunk = [UInt8](repeating: 0xAB, count: 65_536)
                for k in 0..<32 { _ = try? chunk.withUnsafeBytes { try fs.write(other, at: UInt64(k) * 65_536, $0) } }
                return
            }
            let k = i % nodes.count
            guard let data = try? VfatFixtures.readAll(fs, nodes[k]), data == tree[paths[k]] ?? nil else {
                failures.withValue { $0 += 1 }
                return
            }
        }
        #expect(failures.value == 0)
        #expect(try fs.attributes(other).size == 32 * 65_536)
        try fs.close()
        try VfatFixtures.expectClean(image)
    }

    @Test func driverOptionsWarningsAndDeclaredSize() throws {
        let dir = try TempDir("imagemount-vfat")
        let image = dir.file("fs.img")
        try VfatFixtures.mkfs("fat16", at: image)
        let fs = try VfatFilesystem.driver.open(RawImage(path: image, writable: false), false, ["uid=7", "umask=077", "iocharset=utf8"])
        #expect(try fs.attributes(fs.rootNode).uid == 7)
        #expect(try fs.attributes(fs.rootNode).mode == 0o40700)
        #expect(fs.declaredSize == 32 << 20 && fs.warnings.isEmpty)
        try fs.close()
        // A volume left dirty says so, and a writable open leaves its dirty bit alone.
        try RawImage(path: image, writable: true).writeBytes([0x01], at: 37)
        let dirty = try VfatFilesystem(device: RawImage(path: image, writable: true), writable: true)
        #expect(dirty.warnings.count == 1)
        _ = try dirty.createNode(in: dirty.rootNode, name: Array("f".utf8), NewInode(mode: 0o100644, uid: 0, gid: 0))
        try dirty.close()
        #expect(try RawImage(path: image, writable: false).readBytes(at: 37, count: 1) == [0x01])
    }

    func lookupPath(_ fs: VfatFilesystem, _ path: String) throws -> UInt64 {
        var node = fs.rootNode
        for part in path.split(separator: "/") {
            node = try #require(try fs.lookup(node, Array(part.utf8)), "\(path)")
        }
        return node
    }

    @Test(arguments: ["fat12", "fat16", "fat32"])
    func labelUUIDAndUsageAsBlkidAndTheKernel(kind: String) throws {
        let dir = try TempDir("imagemount-vfat")
        let image = dir.file("fs.img")
        try VfatFixtures.mkfs(kind, at: image, label: "MY_LABEL")
        try VfatFixtures.check("mcopy -i \(Shell.quote(image)) /etc/hostname ::/h")
        let fs = try VfatFilesystem(device: RawImage(path: image, writable: false))
        defer { try? fs.close() }
        let blkid = try VfatFixtures.check("blkid -o export \(Shell.quote(image))")
        #expect(blkid.contains("UUID=\(try #require(fs.uuid))\n"))
        #expect(fs.label == "MY_LABEL")
        #expect(fs.typeName == "vfat")
        // fsck.fat -n prints "N files, USED/TOTAL clusters".
        let fsck = try VfatFixtures.check("fsck.fat -n \(Shell.quote(image))")
        let figures = try #require(fsck.split(whereSeparator: { $0 == " " || $0 == "\n" }).last { $0.contains("/") && $0.allSatisfy { $0.isNumber || $0 == "/" } }).split(separator: "/")
        let u = try fs.usage()
        #expect(u.totalBlocks == UInt64(figures[1]))
        #expect(u.totalBlocks - u.freeBlocks == UInt64(figures[0]))
        #expect(u.blockSize == UInt64(fs.blockSize))
        #expect(u.totalInodes == 0 && u.maxNameLength == 1530)
    }

    @Test func modesOwnersAndCaseFoldingLookups() throws {
        let dir = try TempDir("imagemount-vfat")
        let image = dir.file("fs.img")
        try VfatFixtures.mkfs("fat16", at: image)
        try VfatFixtures.check("printf x > \(dir.file("ro.txt")) && mcopy -i \(Shell.quote(image)) \(dir.file("ro.txt")) ::/ro.txt && mattrib -i \(Shell.quote(image)) +r ::/ro.txt && mmd -i \(Shell.quote(image)) ::/Sub")
        let options = try VfatMountOptions(parsing: "uid=1000,gid=100,fmask=0133,dmask=0022,codepage=437")
        let fs = try VfatFilesystem(device: RawImage(path: image, writable: false), options: options)
        defer { try? fs.close() }
        let ro = try #require(try fs.lookup(fs.rootNode, Array("RO.TXT".utf8)))
        #expect(try fs.lookup(fs.rootNode, Array("ro.txt...".utf8)) == ro)
        let a = try fs.attributes(ro)
        #expect(a.mode == 0o100444 && a.uid == 1000 && a.gid == 100)
        let sub = try #require(try fs.lookup(fs.rootNode, Array("sub".utf8)))
        #expect(try fs.attributes(sub).mode == 0o40755)
        #expect(try fs.attributes(sub).links == 2)
        #expect(try fs.attributes(fs.rootNode).links == 3)
        #expect(try fs.xattrs(ro).isEmpty)
        #expect(VfatFixtures.errno { _ = try fs.readlink(ro) } == .invalidArgument)
        // time_offset=60: stored times are UTC+1, so the instants are an hour earlier.
        let shifted = try VfatFilesystem(device: RawImage(path: image, writable: false),
                                         options: VfatMountOptions(parsing: "time_offset=60"))
        defer { try? shifted.close() }
        let roShifted = try #require(try shifted.lookup(shifted.rootNode, Array("ro.txt".utf8)))
        #expect(try shifted.attributes(roShifted).mtime.seconds == a.mtime.seconds - 3600)
        #expect(try VfatMountOptions(parsing: "umask=077") == { var o = VfatMountOptions(); o.fmask = 0o77; o.dmask = 0o77; return o }())
        #expect(VfatFixtures.errno { _ = try VfatMountOptions(parsing: "umask=999") } == .invalidArgument)
    }
}
