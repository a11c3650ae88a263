import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFS
@testable import GuestFSInspect
import Testing
import TestSupport

/// Inspect/Hive.swift over hives built by hivexregedit (WindowsImages), compared with hivexget
/// on the same files; damaged hives built here, the damage in plain sight, each one error and
/// never a trap; the small decoders of Windows inspection (PE header, GUID blobs, Windows paths,
/// osinfo).
@Suite struct HiveTests {
    static let images = Result { try WindowsImages() }

    static func bytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test func minimalHiveOpensWithAnEmptyRoot() throws {
        let hive = try Hive(bytes: RegistryHive.minimal(), name: "min")
        #expect(hive.child(hive.root, "Microsoft") == nil)
        #expect(hive.values(hive.root).isEmpty)
        // hivex's own tools agree the hand-made hive is a hive (one key, the root).
        let dir = try TempDir("imagemount-hive")
        try Data(RegistryHive.minimal()).write(to: URL(fileURLWithPath: dir.file("min")))
        let export = try Shell.run("hivexregedit --export \(Shell.quote(dir.file("min"))) '\\'")
        #expect(export.status == 0 && export.text.contains("[\\]"), "\(export.stderr)")
    }

    @Test func valuesMatchHivexget() throws {
        let f = try Self.images.get()
        for layout in ["mbr", "gpt"] {
            let path = f.hive("SOFTWARE", layout)
            let hive = try Hive(bytes: try Self.bytes(path), name: path)
            let key = try #require(hive.node(["MICROSOFT", "windows nt", "CurrentVersion"]))   // case-insensitive, as Windows
            for name in ["ProductName", "EditionID", "InstallationType", "CurrentBuildNumber", "CurrentVersion"] {
                let want = try Shell.check("hivexget \(Shell.quote(path)) '\\Microsoft\\Windows NT\\CurrentVersion' \(name)")
                    .trimmingCharacters(in: .newlines)
                #expect(try hive.string(try #require(hive.value(key, name))) == want, "\(layout) \(name)")
            }
            let major = try Shell.check("hivexget \(Shell.quote(path)) '\\Microsoft\\Windows NT\\CurrentVersion' CurrentMajorVersionNumber")
            #expect(try hive.dword(try #require(hive.value(key, "currentmajorversionnumber"))) == UInt32(major.trimmingCharacters(in: .newlines)))
            // A string is no DWORD and a DWORD no string: typed errors, not guesses.
            #expect(throws: ImageError.self) { try hive.dword(try #require(hive.value(key, "ProductName"))) }
            #expect(throws: ImageError.self) { try hive.string(try #require(hive.value(key, "CurrentMajorVersionNumber"))) }
        }
    }

    @Test func damagedHivesAreOneErrorEach() throws {
        let f = try Self.images.get()
        let good = try Self.bytes(f.hive("SYSTEM", "mbr"))
        var badChecksum = good
        badChecksum[0x30] ^= 0xFF
        var badMagic = good
        badMagic[0x1000] = 0x00                               // the first hbin page's "hbin"
        var badPage = good
        badPage[0x1008] = 0x10                                // page size 0x1010: not a multiple of 4 KiB
        var badCell = good
        badCell[0x1020 ... 0x1023] = [0x03, 0, 0, 0]          // a cell of 3 bytes
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("header only", Array(good.prefix(4096))),
            ("truncated below two pages", Array(good.prefix(6000))),
            ("truncated in a page", Array(good.prefix(0x2800))),
            ("bad checksum", badChecksum),
            ("not regf", [UInt8](repeating: 0x41, count: 0x3000)),
            ("root offset past the end", RegistryHive.withRootOffset(good, 0x7FFF_0000)),
            ("root offset inside a cell", RegistryHive.withRootOffset(good, 0x24)),
            ("bad hbin magic", badMagic),
            ("bad page size", badPage),
            ("bad cell size", badCell),
        ]
        for (label, bytes) in cases {
            do {
                _ = try Hive(bytes: bytes, name: label)
                Issue.record("\(label): opened")
            } catch let error as ImageError {
                #expect(!error.description.contains("\n"), "\(label): \(error)")
                #expect(error.description.hasPrefix(label), "\(label): \(error)")
            }
        }
    }

    /// Random damage anywhere in the cells of a real hive: hivex and our reads of every key and
    /// value of interest either work or fail with an error, never trap or hang.
    @Test func randomDamageNeverTraps() throws {
        let f = try Self.images.get()
        let good = try Self.bytes(f.hive("SYSTEM", "gpt"))
        var generator = SystemRandomNumberGenerator()
        for round in 0 ..< 400 {
            var bytes = good
            for _ in 0 ..< Int.random(in: 1 ... 16, using: &generator) {
                let at = Int.random(in: 0x1000 ..< bytes.count, using: &generator)
                bytes[at] = UInt8.random(in: 0 ... 255, using: &generator)
            }
            guard let hive = try? Hive(bytes: bytes, name: "round \(round)") else { continue }
            for path in [["Select"], ["MountedDevices"], ["ControlSet002", "Control", "ComputerName", "ComputerName"]] {
                guard let node = hive.node(path) else { continue }
                for (_, value) in hive.values(node) {
                    _ = try? hive.data(value)
                    _ = try? hive.string(value)
                    _ = try? hive.dword(value)
                }
            }
        }
    }

    @Test func utf16IsCheckedUnitByUnit() throws {
        #expect(try Hive.decodeUTF16LE([0x57, 0, 0x69, 0, 0x6E, 0, 0, 0, 0x58, 0], name: "t") == "Win")   // stops at NUL
        #expect(try Hive.decodeUTF16LE([0x3D, 0xD8, 0x00, 0xDE], name: "t") == "😀")                      // a surrogate pair
        #expect(try Hive.decodeUTF16LE([0x41, 0, 0x42], name: "t") == "A")                                 // odd byte dropped
        #expect(throws: ImageError.self) { try Hive.decodeUTF16LE([0x3D, 0xD8, 0x41, 0x00], name: "t") }   // unpaired high surrogate
        #expect(throws: ImageError.self) { try Hive.decodeUTF16LE([0x00, 0xDC], name: "t") }               // lone low surrogate
    }

    @Test func peHeaderArchitecture() {
        func pe(machine: UInt16, lfanew: Int = 0x80, count: Int = 0x200) -> [UInt8] {
            var b = [UInt8](repeating: 0, count: count)
            b[0] = 0x4D; b[1] = 0x5A
            for i in 0 ..< 4 { b[0x3C + i] = UInt8(truncatingIfNeeded: lfanew >> (8 * i)) }
            if lfanew + 6 <= count {
                b[lfanew] = 0x50; b[lfanew + 1] = 0x45
                b[lfanew + 4] = UInt8(machine & 0xFF); b[lfanew + 5] = UInt8(machine >> 8)
            }
            return b
        }
        #expect(PEHeader.architecture(pe(machine: 0x8664)) == "x86_64")
        #expect(PEHeader.architecture(pe(machine: 0x014C)) == "i386")
        #expect(PEHeader.architecture(pe(machine: 0xAA64)) == "aarch64")
        #expect(PEHeader.architecture(pe(machine: 0x1234)) == nil)
        #expect(PEHeader.architecture(pe(machine: 0x8664, lfanew: 0x7FFF_FFFF)) == nil)   // e_lfanew past the bytes
        #expect(PEHeader.architecture(pe(machine: 0x8664, lfanew: 0x1FC)) == nil)         // PE signature cut off
        #expect(PEHeader.architecture(Array("MZ".utf8)) == nil)
    }

    @Test func mountedDevicesGUIDsReadAsLibguestfsReadsThem() {
        // {6F1A3C2E-4B5D-4E6F-8A9B-0C1D2E3F4A5B} as Windows stores it.
        let stored: [UInt8] = [0x2E, 0x3C, 0x1A, 0x6F, 0x5D, 0x4B, 0x6F, 0x4E, 0x8A, 0x9B, 0x0C, 0x1D, 0x2E, 0x3F, 0x4A, 0x5B]
        #expect(WindowsDriveMappings.gptGUID(stored) == WindowsImages.cGUID)
    }

    @Test func windowsPathsSplit() {
        func split(_ path: String) -> String {
            let (drive, unix) = WindowsPath.split(path)
            return (drive.map { String($0) + ":" } ?? "-") + " " + unix
        }
        #expect(split("C:\\Windows\\win.ini") == "c: /Windows/win.ini")
        #expect(split("c:/windows/WIN.INI") == "c: /windows/WIN.INI")
        #expect(split("D:") == "d: /")
        #expect(split("\\Users\\x") == "- /Users/x")
        #expect(split("/etc/hostname") == "- /etc/hostname")
        #expect(split("1:\\x") == "- /1:/x")
    }

    @Test func osinfoFollowsLibguestfs() {
        func id(_ major: Int, _ minor: Int, _ product: String, _ variant: String, build: String? = nil) -> String? {
            var os = OperatingSystem(root: "/dev/sda2")
            os.majorVersion = major
            os.minorVersion = minor
            os.productName = product
            os.productVariant = variant
            os.buildID = build
            return WindowsInspector.osinfo(os)
        }
        #expect(id(10, 0, "Windows 10 Pro", "Client", build: "19045") == "win10")
        #expect(id(10, 0, "Windows 10 Pro", "Client", build: "22631") == "win11")
        #expect(id(10, 0, "Windows 10 Pro", "Client") == nil)
        #expect(id(10, 0, "Windows Server 2019 Datacenter", "Server") == "win2k19")
        #expect(id(10, 0, "Windows Server 2022 Standard", "Server Core") == "win2k22")
        #expect(id(10, 0, "Windows Server 2016 Standard", "Server") == "win2k16")
        #expect(id(6, 1, "Windows 7 Professional", "Client") == "win7")
        #expect(id(6, 1, "Windows Server 2008 R2 Standard", "Server") == "win2k8r2")
        #expect(id(6, 3, "Windows 8.1 Pro", "Client") == "win8.1")
        #expect(id(5, 2, "Windows XP Professional x64 Edition", "Client") == "winxp")
        #expect(id(5, 2, "Windows Server 2003 R2", "Server") == "win2k3r2")
        #expect(id(4, 0, "Windows NT", "Server") == nil)
    }
}
