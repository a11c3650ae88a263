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
import Testing
import TestSupport

/// The superblock decoder: CRC32C known answers, geometry as xfs_db prints it, and the feature
/// policy (each refusal one line naming the reason), on superblocks edited in memory and
/// re-stamped with a correct CRC so only the edited field is wrong.
@Suite(.serialized) struct XFSSuperblockTests {
    @Test func crc32cKnownAnswers() throws {
        let check = Array("123456789".utf8)
        let raw = check.withUnsafeBytes { ~XFSChecksum.update(0xFFFF_FFFF, $0) }
        #expect(raw == 0xE306_9283)
        #expect([UInt8](repeating: 0, count: 32).withUnsafeBytes { ~XFSChecksum.update(0xFFFF_FFFF, $0) } == 0x8A91_36AA)
        // A real v5 superblock verifies, and fails once one byte changes.
        var sector = try Self.sector0("v5-default")
        #expect(XFSChecksum.verify(sector, crcOffset: XFSSuperblock.crcOffset))
        sector[300] ^= 1
        #expect(!XFSChecksum.verify(sector, crcOffset: XFSSuperblock.crcOffset))
    }

    static func sector0(_ configuration: String) throws -> [UInt8] {
        let image = try XFSFixtures.image(configuration)
        return try RawImage(path: image.path, writable: false).readBytes(at: 0, count: 512)
    }

    /// xfs_db's `sb 0` print of the same fields.
    @Test(arguments: XFSFilesystemTests.configurations)
    func geometryMatchesXfsDb(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let sb = try XFSSuperblock(Self.sector0(configuration), device: "test")
        let text = try Shell.check("xfs_db -r -c 'sb 0' -c 'p blocksize dblocks agblocks agcount inodesize rootino logstart logblocks dirblklog' \(Shell.quote(image.path))")
        var db: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, let v = UInt64(parts[1]) { db[parts[0]] = v }
        }
        #expect(db["blocksize"] == UInt64(sb.blockSize))
        #expect(db["dblocks"] == sb.dataBlocks)
        #expect(db["agblocks"] == UInt64(sb.agBlocks))
        #expect(db["agcount"] == UInt64(sb.agCount))
        #expect(db["inodesize"] == UInt64(sb.inodeSize))
        #expect(db["rootino"] == sb.rootInode)
        #expect(db["logstart"] == sb.logStart)
        #expect(db["logblocks"] == UInt64(sb.logBlocks))
        #expect(db["dirblklog"] == UInt64(sb.dirBlockLog))
        let g = sb.geometry
        #expect(g.isV5 && g.hasFtype)
        #expect(g.hasBigtime == (configuration != "rhel7-like"))
        #expect(g.hasNrext64 == (configuration == "v5-rmap-nrext64"))
    }

    /// Sets a big-endian field and re-stamps the CRC.
    static func edited(_ sector: [UInt8], _ edits: [(offset: Int, width: Int, value: UInt64)], restamp: Bool = true) -> [UInt8] {
        var s = sector
        for e in edits {
            for i in 0 ..< e.width { s[e.offset + i] = UInt8(truncatingIfNeeded: e.value >> (8 * UInt64(e.width - 1 - i))) }
        }
        if restamp {
            let crc = XFSChecksum.compute(s, crcOffset: XFSSuperblock.crcOffset)
            for i in 0 ..< 4 { s[XFSSuperblock.crcOffset + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        }
        return s
    }

    static func refusal(_ sector: [UInt8]) -> ImageError? {
        do { _ = try XFSSuperblock(sector, device: "disk.img"); return nil } catch let e as ImageError { return e } catch { return nil }
    }

    @Test func refusedByName() throws {
        let sector = try Self.sector0("v5-default")
        let sb = try XFSSuperblock(sector, device: "test")
        let incompat = UInt64(sb.incompatFeatures)
        let cases: [(edits: [(Int, Int, UInt64)], restamp: Bool, says: String)] = [
            ([(216, 4, incompat | 0x8000_0000)], true, "unknown incompatible feature 0x80000000 is not supported"),
            ([(216, 4, incompat | 0x100)], true, "incompatible feature metadir (0x100) is not supported"),
            ([(216, 4, incompat | 0x10)], true, "the filesystem is marked needsrepair (run xfs_repair first)"),
            ([(16, 8, 1000)], true, "a realtime device is not supported (sb_rblocks 1000)"),
            ([(48, 8, 0)], true, "an external log device is not supported (sb_logstart 0)"),
            ([(4, 4, 3000)], true, "block size 3000 (log 12) is invalid"),
            ([(88, 4, 0)], true, "AG geometry (0 AGs of \(sb.agBlocks) blocks, log \(sb.agBlockLog)) is invalid"),
            ([(8, 8, UInt64.max)], true, "data blocks \(UInt64.max) do not fit \(sb.agCount) AGs of \(sb.agBlocks) blocks"),
            ([(104, 2, 4096)], true, "inode size 4096 (log 9) is invalid"),
            ([(100, 2, UInt64(sb.versionNumber & ~0xF | 6))], true, "superblock version 6 is not 4 or 5"),
            ([(120, 1, 13)], false, "CRC mismatch (the superblock is damaged)"),
            ([(0, 4, 0x5846_5343)], true, "bad magic (not XFSB)"),
        ]
        for c in cases {
            let e = Self.refusal(Self.edited(sector, c.edits.map { (offset: $0.0, width: $0.1, value: $0.2) }, restamp: c.restamp))
            #expect(e?.reason == c.says)
            #expect(e?.structure == "XFS superblock")
            #expect(e.map { !$0.description.contains("\n") } ?? false)
        }
        // Read-only-compatible bits never stop a read-only open.
        #expect(Self.refusal(Self.edited(sector, [(offset: 212, width: 4, value: 0xFFFF_FFFF)])) == nil)
        #expect(Self.refusal(sector) == nil)
    }

    @Test func theDriverNamesTheDeviceInARefusal() throws {
        let scratch = try TempDir("xfs-sb")
        let image = try XFSFixtures.image("v5-default")
        let copy = scratch.file("needsrepair.img")
        try Shell.check("cp --sparse=always \(Shell.quote(image.path)) \(Shell.quote(copy))")
        let sector = try Self.sector0("v5-default")
        let sb = try XFSSuperblock(sector, device: "test")
        let bad = Self.edited(sector, [(offset: 216, width: 4, value: UInt64(sb.incompatFeatures) | 0x10)])
        let handle = try #require(FileHandle(forWritingAtPath: copy))
        try handle.write(contentsOf: Data(bad))
        try handle.close()
        let e = #expect(throws: ImageError.self) { try XFSFilesystem(device: RawImage(path: copy, writable: false)) }
        #expect(e?.description == "\(copy): XFS superblock at 0x0: the filesystem is marked needsrepair (run xfs_repair first)")
    }

    /// The AGF and AGI of every AG verify, and their counters sum to the clean superblock's
    /// (what xfs_initialize_perag_data recomputes after a log recovery); a damaged AGF is named.
    @Test(arguments: XFSFilesystemTests.configurations)
    func agHeadersSumToTheSuperblockCounters(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        let headers = XFSAGHeaderReader(device: fs.device, geometry: fs.geometry)
        var free: UInt64 = 0, count: UInt64 = 0, freeInodes: UInt64 = 0, length: UInt64 = 0
        for ag in 0 ..< fs.geometry.agCount {
            let agf = try headers.freeSpace(ag), agi = try headers.inodes(ag)
            #expect(agf.length == fs.geometry.agLength(ag, dataBlocks: fs.superblock.dataBlocks) && agi.length == agf.length)
            free += UInt64(agf.freeBlocks) + UInt64(agf.freeListCount) + UInt64(agf.btreeBlocks)
            count += UInt64(agi.count)
            freeInodes += UInt64(agi.freeCount)
            length += UInt64(agf.length)
        }
        #expect(length == fs.superblock.dataBlocks)
        #expect(free == fs.superblock.freeDataBlocks, "\(configuration)")
        #expect(count == fs.superblock.inodeCount && freeInodes == fs.superblock.freeInodes, "\(configuration)")
        var sector = try RawImage(path: image.path, writable: false).readBytes(at: fs.geometry.agHeaderOffset(1, sector: 1), count: Int(fs.geometry.sectorSize))
        #expect(throws: Never.self) { try XFSAGFreeSpace(sector, ag: 1, geometry: fs.geometry, deviceOffset: 0) }
        sector[60] ^= 1
        let e = #expect(throws: ImageError.self) { try XFSAGFreeSpace(sector, ag: 1, geometry: fs.geometry, deviceOffset: 0) }
        #expect(e?.structure == "AGF 1" && e?.reason == "CRC mismatch")
    }
}
