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

/// The pieces of libguestfs's release-file rules: its version parser and the PCRE patterns
/// of inspect_fs_unix.ml, searched anywhere in the line.
@Suite struct ReleaseFilesTests {
    func same(_ a: (Int, Int)?, _ b: (Int, Int)) -> Bool { a.map { $0 == b } ?? false }

    @Test func versionParserTakesTheFirstMajorMinorElseTheFirstNumber() {
        #expect(same(OSRelease.parseVersion("22.04"), (22, 4)))
        #expect(same(OSRelease.parseVersion("3.18.4"), (3, 18)))
        #expect(same(OSRelease.parseVersion("9"), (9, 0)))
        #expect(same(OSRelease.parseVersion("bookworm 12.5 and 13"), (12, 5)))
        #expect(same(OSRelease.parseVersion("v7 then 8.1"), (8, 1)), "N.M anywhere wins over an earlier lone N")
        #expect(OSRelease.parseVersion("trixie/sid") == nil)
        #expect(OSRelease.parseVersion("") == nil)
    }

    @Test func redHatPatterns() {
        let line = "Red Hat Enterprise Linux Server release 6.10 (Santiago)"
        #expect(same(ReleasePattern.majorMinor("Red Hat").match(line), (6, 10)))
        #expect(same(ReleasePattern.major("Red Hat").match(line), (6, 0)))
        #expect(ReleasePattern.updateForm("Red Hat").match(line) == nil)
        #expect(same(ReleasePattern.updateForm("Red Hat").match("Red Hat Enterprise Linux AS release 4 (Nahant Update 9)"), (4, 9)))
        #expect(ReleasePattern.majorMinor("CentOS").match(line) == nil)
        #expect(same(ReleasePattern.majorMinor("CentOS").match("CentOS Linux release 7.9.2009 (Core)"), (7, 9)))
        #expect(same(ReleasePattern.fedora.match("Fedora release 39 (Thirty Nine)"), (39, 0)))
        #expect(ReleasePattern.fedora.match("Fedora Linux 39") == nil)
    }

    @Test func genericParseSetsProductAndDistroEvenWhenThePatternFails() {
        var facts = ReleaseFacts()
        #expect(!ReleaseFacts.generic("fedora", .fedora)("Red Hat Enterprise Linux release 9.2 (Plow)\n", &facts))
        #expect(facts.distro == "fedora" && facts.productName == "Red Hat Enterprise Linux release 9.2 (Plow)" && facts.version == nil)
        #expect(ReleaseFacts.generic("rhel", .majorMinor("Red Hat"))("Red Hat Enterprise Linux release 9.2 (Plow)\n", &facts))
        #expect(facts.distro == "rhel" && same(facts.version, (9, 2)))
        #expect(!ReleaseFacts.generic("debian", nil)("\n", &facts), "an empty first line fails")
    }

    @Test func osReleaseNeedsIDPrettyNameAndAVersion() {
        var facts = ReleaseFacts()
        #expect(!ReleaseFacts.osRelease("ID=fedora\nVERSION_ID=39\n", &facts), "no PRETTY_NAME")
        facts = ReleaseFacts()
        #expect(ReleaseFacts.osRelease("ID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39\"\n", &facts))
        facts = ReleaseFacts()
        #expect(!ReleaseFacts.osRelease("ID=centos\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\n", &facts), "major-only CentOS")
        facts = ReleaseFacts()
        #expect(ReleaseFacts.osRelease("ID=void\nPRETTY_NAME=\"Void Linux\"\n", &facts) && same(facts.version, (0, 0)), "rolling Void")
    }
}
