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

/// Short names as the kernel's vfat_create_shortname makes them under shortname=mixed.
@Suite struct VfatShortNameTests {
    func short(_ name: String, taken: Set<String> = []) throws -> (String, Bool) {
        let units = try VfatName.longName(Array(name.utf8))
        let (raw, long) = try VfatName.shortName(for: units) { taken.contains(String(decoding: $0, as: UTF8.self)) }
        return (String(decoding: raw, as: UTF8.self), long)
    }

    @Test func aliases() throws {
        #expect(try short("README.TXT") == ("README  TXT", false))
        #expect(try short("readme.txt") == ("README  TXT", true))
        #expect(try short("Makefile") == ("MAKEFILE   ", true))
        #expect(try short("longfilename.txt") == ("LONGFI~1TXT", true))
        #expect(try short("longfilename.txt", taken: ["LONGFI~1TXT"]) == ("LONGFI~2TXT", true))
        #expect(try short("a+b.txt") == ("A_B~1   TXT", true))
        #expect(try short(".hidden") == ("HIDDEN~1   ", true))
        #expect(try short("archive.tar.gz") == ("ARCHIV~1GZ ", true))
        #expect(try short("x.html") == ("X~1     HTM", true))
        #expect(try short("trailing.dots...") == ("TRAILI~1DOT", true))
        #expect(try short("日本.txt") == ("__~1    TXT", true))
    }

    @Test func hexTailAfterNine() throws {
        let taken = Set((1...9).map { "LONGFI~\($0)TXT" })
        let (name, long) = try short("longfilename.txt", taken: taken)
        #expect(long && name.hasPrefix("LO") && name.dropFirst(6).hasPrefix("~") && name.hasSuffix("TXT"))
    }

    @Test func refusedNames() {
        for bad in ["a:b", "a*", "q?", "<", "back\\slash", "tab\t"] {
            #expect(throws: ImageError.self) { _ = try VfatName.longName(Array(bad.utf8)) }
        }
        #expect((try? VfatName.longName(Array(repeating: 0x61, count: 255))) != nil)
        #expect(throws: ImageError.self) { _ = try VfatName.longName([0xFF, 0xFE]) }
    }

    @Test func checksumAndTimes() {
        // fatgen103 §7.2's algorithm on a known alias (mkfs.fat, mtools and Windows agree).
        #expect(VfatShortEntry.checksum(Array("README  TXT".utf8)) == 0x73)
        let t = VfatTime(Timestamp(seconds: 1_700_000_001, nanoseconds: 250_000_000), offsetMinutes: 0)
        #expect(t.timestamp(offsetMinutes: 0) == Timestamp(seconds: 1_700_000_001, nanoseconds: 250_000_000))
        #expect(VfatTime(date: t.date, time: t.time).timestamp(offsetMinutes: 0).seconds == 1_700_000_000)
        #expect(VfatTime(Timestamp(seconds: 0, nanoseconds: 0), offsetMinutes: 0).timestamp(offsetMinutes: 0).seconds == 315_532_800)
        #expect(VfatTime(Timestamp(seconds: .max, nanoseconds: -5), offsetMinutes: 60).timestamp(offsetMinutes: 0).seconds == 4_354_819_198)
        #expect(VfatTime(Timestamp(seconds: .min, nanoseconds: 0), offsetMinutes: -60).date == 0x21)
    }
}
