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

/// Damaged volumes, the damage made here in the test: a chain that loops, leaves the volume or
/// meets a free entry is EIO for that file only; long-name entries with a wrong checksum or a
/// broken run are ignored and the short name shows, as the kernel does; an impossible BPB
/// does not open.
@Suite(.enabled(if: VfatFixtures.haveTools)) struct VfatHostileTests {
    /// A FAT16 image holding a.bin (several clusters), b.txt and a long-named file.
    static func image(in dir: TempDir) throws -> String {
        let image = dir.file("fs.img")
        try VfatFixtures.mkfs("fat16", at: image)
        try VfatFixtures.check("""
            head -c 10000 /dev/urandom > \(dir.file("a.bin")) && printf 'bee\\n' > \(dir.file("b.txt")) && \
            printf 'long\\n' > \(Shell.quote(dir.file("a long name here.txt"))) && mkdir \(dir.file("sub")) && \
            mcopy -i \(Shell.quote(image)) \(dir.file("a.bin")) \(dir.file("b.txt")) \(Shell.quote(dir.file("a long name here.txt"))) \(dir.file("sub")) ::/
            """)
        return image
    }

    /// FAT geometry from the boot sector: where FAT copy `k`'s entry `n` is (FAT16).
    static func fatEntryOffsets(_ device: RawImage, _ n: UInt32) throws -> [UInt64] {
        let b = try device.readBytes(at: 0, count: 512)
        let bps = UInt64(b[11]) | UInt64(b[12]) << 8, reserved = UInt64(b[14]) | UInt64(b[15]) << 8
        let fats = UInt64(b[16]), fatSize = UInt64(b[22]) | UInt64(b[23]) << 8
        return (0..<fats).map { reserved * bps + $0 * fatSize * bps + 2 * UInt64(n) }
    }

    static func setFat(_ path: String, _ n: UInt32, _ value: UInt16) throws {
        let device = try RawImage(path: path, writable: true)
        for o in try fatEntryOffsets(device, n) { try device.writeBytes([UInt8(value & 0xFF), UInt8(value >> 8)], at: o) }
        try device.flush()
    }

    /// The node (entry position) and first cluster of `name` in the root.
    static func node(_ path: String, _ name: String) throws -> (UInt64, UInt32, UInt32) {
        let fs = try VfatFilesystem(device: RawImage(path: path, writable: false))
        defer { try? fs.close() }
        let node = try #require(try fs.lookup(fs.rootNode, Array(name.utf8)))
        let e = try RawImage(path: path, writable: false).readBytes(at: node, count: 32)
        let first = UInt32(e[26]) | UInt32(e[27]) << 8
        return (node, first, UInt32(e[28]) | UInt32(e[29]) << 8)
    }

    @Test(arguments: ["loop", "out of range", "free inside", "reserved 1"])
    func brokenChainIsEIOForThatFileOnly(damage: String) throws {
        let dir = try TempDir("imagemount-vfat")
        let path = try Self.image(in: dir)
        let (_, first, _) = try Self.node(path, "a.bin")
        switch damage {
        case "loop": try Self.setFat(path, first + 2, UInt16(first))  // mcopy lays a.bin out contiguously
        case "out of range": try Self.setFat(path, first + 1, 0xFFF0)
        case "free inside": try Self.setFat(path, first + 1, 0)
        default: try Self.setFat(path, first, 1)
        }
        let fs = try VfatFilesystem(device: RawImage(path: path, writable: false))
        defer { try? fs.close() }
        let a = try #require(try fs.lookup(fs.rootNode, Array("a.bin".utf8)))
        #expect(VfatFixtures.errno { _ = try VfatFixtures.readAll(fs, a) } == .ioError)
        let b = try #require(try fs.lookup(fs.rootNode, Array("b.txt".utf8)))
        #expect(try VfatFixtures.readAll(fs, b) == Array("bee\n".utf8))
        #expect(try fs.entries(fs.rootNode).count == 4)
        // Writing refuses too, and leaves the other files alone.
        let w = try VfatFilesystem(device: RawImage(path: path, writable: true), writable: true)
        let wa = try #require(try w.lookup(w.rootNode, Array("a.bin".utf8)))
        #expect(VfatFixtures.errno { _ = try [UInt8](repeating: 1, count: 20000).withUnsafeBytes { try w.write(wa, at: 0, $0) } } == .ioError)
        try w.close()
    }

    @Test func directoryWithABadClusterFailsAlone() throws {
        let dir = try TempDir("imagemount-vfat")
        let path = try Self.image(in: dir)
        let (node, _, _) = try Self.node(path, "sub")
        let device = try RawImage(path: path, writable: true)
        try device.writeBytes([0xF0, 0xFF], at: node + 26)
        let fs = try VfatFilesystem(device: RawImage(path: path, writable: false))
        defer { try? fs.close() }
        let sub = try #require(try fs.lookup(fs.rootNode, Array("sub".utf8)))
        #expect(VfatFixtures.errno { _ = try fs.entries(sub) } == .ioError)
        #expect(try fs.entries(fs.rootNode).count == 4)
    }

    @Test(arguments: ["checksum", "no last flag", "ordinal gap"])
    func inconsistentLongNamesLeaveTheShortName(damage: String) throws {
        let dir = try TempDir("imagemount-vfat")
        let path = try Self.image(in: dir)
        let (node, _, _) = try Self.node(path, "a long name here.txt")
        let device = try RawImage(path: path, writable: true)
        // "a long name here.txt" takes two long-name entries: [0x42 …][0x01 …][short].
        let last = node - 64, first = node - 32
        #expect(try device.readBytes(at: last, count: 1) == [0x42])
        switch damage {
        case "checksum":
            let c = try device.readBytes(at: first + 13, count: 1)[0]
            try device.writeBytes([c ^ 0xFF], at: first + 13)
            try device.writeBytes([c ^ 0xFF], at: last + 13)
        case "no last flag": try device.writeBytes([0x02], at: last)
        default: try device.writeBytes([0x03], at: first)
        }
        let fs = try VfatFilesystem(device: RawImage(path: path, writable: false))
        defer { try? fs.close() }
        let names = try fs.entries(fs.rootNode).map { String(decoding: $0.name, as: UTF8.self) }
        #expect(names.contains("ALONGN~1.TXT"), "\(names)")
        #expect(!names.contains("a long name here.txt"))
        #expect(names.contains("b.txt"))
    }

    @Test(arguments: [(11, [0, 0]), (11, [0x00, 0x03]), (13, [3]), (13, [0]), (16, [0]), (21, [0x12]), (14, [0, 0])])
    func impossibleBootSectorsDoNotOpen(offset: Int, bytes: [UInt8]) throws {
        let dir = try TempDir("imagemount-vfat")
        let path = try Self.image(in: dir)
        try RawImage(path: path, writable: true).writeBytes(bytes, at: UInt64(offset))
        #expect(VfatFixtures.errno { _ = try VfatFilesystem(device: RawImage(path: path, writable: false)) } == .invalidArgument)
    }

    @Test func truncatedImageFailsWithoutTrapping() throws {
        let dir = try TempDir("imagemount-vfat")
        let path = try Self.image(in: dir)
        try VfatFixtures.check("truncate -s 300K \(Shell.quote(path))")
        if let fs = try? VfatFilesystem(device: RawImage(path: path, writable: false)) {
            _ = try? VfatFixtures.read(fs)
            try fs.close()
        }
        #expect(VfatFixtures.errno { _ = try VfatFilesystem(device: RawImage(path: path, writable: true), writable: true) } == .invalidArgument)
    }
}
