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

/// Decoders of ISO9660RockRidge.swift, ISO9660Joliet.swift and ISO9660Date.swift on entries built
/// here byte by byte (RRIP 4.1, ECMA-119 8.4.26.1 and 9.1.5).
@Suite struct ISO9660RockRidgeTests {
    func both32(_ v: UInt32) -> [UInt8] {
        let le = (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) }
        return le + le.reversed()
    }

    func entry(_ sig: String, _ data: [UInt8]) -> SUSPEntry {
        let s = Array(sig.utf8)
        return SUSPEntry(signature: UInt16(s[0]) << 8 | UInt16(s[1]), version: 1, data: data[...])
    }

    /// SL components: ROOT, names, a name continued into the next SL entry, PARENT and CURRENT.
    @Test func symlinkComponentsAsTheKernelJoinsThem() {
        // "/usr/lo" + (continued) "cal" + "/../." split over two SL entries, the first flagged CONTINUE.
        let first: [UInt8] = [1, 0x08, 0, 0, 3] + Array("usr".utf8) + [0x01, 2] + Array("lo".utf8)
        let second: [UInt8] = [0, 0, 3] + Array("cal".utf8) + [0x04, 0, 0x02, 0]
        let rr = RockRidgeInfo([entry("SL", first), entry("SL", second)])
        #expect(rr.symlinkTarget.map { String(decoding: $0, as: UTF8.self) } == "/usr/local/../.")
        // A component running past its entry is damage: readlink fails (EIO) rather than guess.
        let broken = RockRidgeInfo([entry("SL", [0, 0, 200, 0x41])])
        #expect(broken.symlinkTarget == nil && broken.symlinkDamaged)
        // An empty component between two names is a doubled slash.
        let double = RockRidgeInfo([entry("SL", [0, 0, 1, 0x61, 0, 0, 0, 1, 0x62])])
        #expect(double.symlinkTarget == Array("a//b".utf8))
    }

    @Test func posixAttributesDevicesAndNames() {
        let px = both32(0o20644) + both32(3) + both32(1000) + both32(100)
        let pn = both32(0) + both32(UInt32(259 << 8 | 7))
        let nm1: [UInt8] = [0x01] + Array("long-".utf8), nm2: [UInt8] = [0] + Array("name".utf8)
        let rr = RockRidgeInfo([entry("PX", px), entry("PN", pn), entry("NM", nm1), entry("NM", nm2), entry("NM", [0x02])])
        #expect(rr.mode == 0o20644 && rr.links == 3 && rr.uid == 1000 && rr.gid == 100)
        #expect(rr.rdev?.major == 259 && rr.rdev?.minor == 7)
        #expect(rr.name == Array("long-name".utf8))
        // The kernel's reading of a split PN, and glibc's dev_t layout in the low half.
        #expect(RockRidgeInfo.deviceNumber(high: 8, low: 1) == (8, 1))
        #expect(RockRidgeInfo.deviceNumber(high: 0, low: 0x1100_0103) == (1, 0x11003))
        #expect(RockRidgeInfo.deviceNumber(high: 0, low: 5) == (0, 5))
    }

    /// TF: short (7-byte) and long (17-byte) forms, with the GMT offset; CREATION goes to crtime
    /// and, without ATTRIBUTES, to ctime as in the kernel.
    @Test func timesInBothForms() {
        let short: [UInt8] = [0x06, 101, 2, 3, 4, 5, 6, 0, 124, 12, 31, 23, 59, 59, 4]   // MODIFY, ACCESS
        let rr = RockRidgeInfo([entry("TF", short)])
        #expect(rr.modification == Timestamp(seconds: 981_173_106, nanoseconds: 0))
        #expect(rr.access == Timestamp(seconds: 1_735_689_599 - 3600, nanoseconds: 0))
        let long: [UInt8] = [0x81] + Array("2001020304050625".utf8) + [0]
        let rr2 = RockRidgeInfo([entry("TF", long)])
        #expect(rr2.creation == Timestamp(seconds: 981_173_106, nanoseconds: 250_000_000))
        #expect(ISO9660Date.long(Array("0000000000000000".utf8 + [0])[...]) == nil)
        #expect(ISO9660Date.blkidUUID(Array("2026120116483900".utf8 + [0])[...]) == "2026-12-01-16-48-39-00")
        // An out-of-range offset is ignored, as iso_date ignores it.
        #expect(ISO9660Date.short([70, 1, 1, 0, 0, 0, 100][...]) == Timestamp(seconds: 0, nanoseconds: 0))
    }

    @Test func jolietAndPlainNames() {
        let ucs2: [UInt8] = [0, 0x66, 0, 0xFC, 0xD8, 0x3D, 0xDE, 0x00, 0, 0x2E, 0, 0x3B, 0, 0x31]   // "fü😀.;1"
        #expect(ISO9660Joliet.name(ucs2) == Array("fü😀".utf8))
        #expect(ISO9660Joliet.name([0xD8, 0x3D, 0, 0x61]) == Array("a".utf8))   // a lone surrogate is dropped
        #expect(ISO9660FileIdentifier.name(Array("README.;1".utf8)) == Array("readme".utf8))
        #expect(ISO9660FileIdentifier.name(Array("HELLO.TXT;1".utf8)) == Array("hello.txt".utf8))
        #expect(ISO9660FileIdentifier.name(Array("A;2".utf8)) == Array("a.2".utf8))
        #expect(ISO9660FileIdentifier.name(Array("DIR".utf8)) == Array("dir".utf8))
        for bad in [[], [0x2E], [0x2E, 0x2E], Array("a/b".utf8), [0x61, 0], [UInt8](repeating: 0x61, count: 256)] {
            #expect(!ISO9660FileIdentifier.isServable(bad))
        }
    }
}
