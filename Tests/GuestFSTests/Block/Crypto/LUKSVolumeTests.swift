import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// LUKS containers on files: LUKS1 made whole by qemu-img, LUKS2 headers made by cryptsetup
/// (pbkdf2 and argon2id) with payloads encrypted by the test. Each must decrypt to exactly the
/// plaintext it was made from; writes must read back through qemu-img's own LUKS driver.
@Suite struct LUKSVolumeTests {
    static func passphrases(_ p: String = LUKSFixtures.passphrase) -> [SecretBytes] { [SecretBytes(utf8: p)] }

    static func fixtures() throws -> [LUKSFixtures.Guest] {
        [try LUKSFixtures.luksOnLVM(), try LUKSFixtures.lvmInLUKS(), try LUKSFixtures.argon2WholeDisk()]
    }

    @Test(arguments: ["luks1-qemu", "luks2-pbkdf2-4k", "luks2-argon2id"])
    func decryptsToThePlaintext(_ which: String) throws {
        let g = try Self.fixtures()[["luks1-qemu", "luks2-pbkdf2-4k", "luks2-argon2id"].firstIndex(of: which)!]
        let device = try LUKSVolume.open(try RawImage(path: g.container, writable: false), passphrases: Self.passphrases(), name: "/dev/mapper/x")
        let expected = Array(try Data(contentsOf: URL(fileURLWithPath: g.plaintext)))
        #expect(device.size >= UInt64(expected.count))
        try Qcow2ImageTests.compare(SliceDevice(base: device, start: 0, size: UInt64(expected.count), name: "p"),
                                    with: expected, unit: device.cipher.sectorSize, label: which)
        #expect(device.header?.uuid == g.luksUUID)
    }

    @Test func headerFieldsMatchLuksDump() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        let header = try LUKSHeader.read(from: RawImage(path: g.container, writable: false))
        #expect(header.version == 2)
        #expect(header.sectorSize == 512)
        #expect(header.payloadCipher.description == "aes-xts-plain64 (512-bit key)")
        guard case .argon2(let id, let time, let memory, let lanes, _)? = header.keyslots.first?.kdf else {
            Issue.record("keyslot 0 is not argon2: \(String(describing: header.keyslots.first?.kdf))"); return
        }
        #expect(id && time == 4 && memory == 32768 && lanes == 2)
        let g2 = try LUKSFixtures.lvmInLUKS()
        #expect(try LUKSHeader.read(from: RawImage(path: g2.container, writable: false)).sectorSize == 4096)
    }

    @Test func wrongPassphraseIsRefused() throws {
        for g in try Self.fixtures() {
            do {
                _ = try LUKSVolume.open(try RawImage(path: g.container, writable: false), passphrases: Self.passphrases("nope"), name: "x")
                Issue.record("\(g.container): opened with a wrong key")
            } catch let e as ImageError {
                #expect(e.errno == .permissionDenied)
                #expect(e.description.contains("wrong passphrase"))
                #expect(!e.description.contains("nope"))
            }
        }
    }

    /// A copy of `file` with `patch` applied.
    static func patched(_ file: String, _ patch: (inout [UInt8]) -> Void) throws -> (TempDir, String) {
        let dir = try TempDir("imagemount-luks")
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        patch(&bytes)
        let out = dir.file("copy.img")
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        return (dir, out)
    }

    @Test func luks2FallsBackToTheSecondaryHeader() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        // Damage the primary JSON area: its checksum fails, the secondary copy is used.
        let (d, path) = try Self.patched(g.container) { b in for i in 4096..<4200 { b[i] ^= 0x5A } }
        defer { _ = d }
        let device = try LUKSVolume.open(try RawImage(path: path, writable: false), passphrases: Self.passphrases(), name: "x")
        let expected = Array(try Data(contentsOf: URL(fileURLWithPath: g.plaintext)).prefix(65536))
        #expect(try device.readBytes(at: 0, count: 65536) == expected)
        // Both copies damaged: a clear error naming both.
        let (d2, both) = try Self.patched(g.container) { b in
            for i in 4096..<4200 { b[i] ^= 0x5A }
            for i in (16384 + 4096)..<(16384 + 4200) { b[i] ^= 0x5A }
        }
        defer { _ = d2 }
        #expect {
            _ = try LUKSVolume.open(try RawImage(path: both, writable: false), passphrases: Self.passphrases(), name: "x")
        } throws: { e in
            let text = "\(e)"
            return text.contains("primary header") && text.contains("checksum mismatch")
        }
    }

    /// Rewrites the JSON of the primary header with `edit`, fixing the checksum, and removes the
    /// secondary so that the edited copy is the one read.
    static func editedLUKS2(_ file: String, _ edit: (String) -> String) throws -> (TempDir, String) {
        try patched(file) { b in
            var json = String(decoding: b[4096..<16384].prefix { $0 != 0 }, as: UTF8.self)
            json = edit(json)
            var area = Array(json.utf8)
            area += [UInt8](repeating: 0, count: 16384 - 4096 - area.count)
            b.replaceSubrange(4096..<16384, with: area)
            for i in 448..<512 { b[i] = 0 }
            var zeroed = Array(b[0..<16384])
            var sum = [UInt8](repeating: 0, count: 32)
            let hash = LUKSHash(name: "sha256")!
            zeroed.withUnsafeBytes { z in sum.withUnsafeMutableBytes { hash.digest(z, into: $0) } }
            b.replaceSubrange(448..<480, with: sum)
            for i in 16384..<16390 { b[i] = 0 }   // secondary magic gone
            SecretBytes.wipe(&zeroed)
        }
    }

    @Test func hostileKDFNumbersAreRefusedQuickly() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        let (d, memory) = try Self.editedLUKS2(g.container) { $0.replacingOccurrences(of: "\"memory\":32768", with: "\"memory\":4294967295") }
        defer { _ = d }
        let start = Date()
        #expect {
            _ = try LUKSVolume.open(try RawImage(path: memory, writable: false), passphrases: Self.passphrases(), name: "x")
        } throws: { "\($0)".contains("argon2 memory") }
        #expect(Date().timeIntervalSince(start) < 5)
        let (d2, stripes) = try Self.editedLUKS2(g.container) { $0.replacingOccurrences(of: "\"stripes\":4000", with: "\"stripes\":99999999") }
        defer { _ = d2 }
        #expect {
            _ = try LUKSVolume.open(try RawImage(path: stripes, writable: false), passphrases: Self.passphrases(), name: "x")
        } throws: { "\($0)".contains("AF stripes") }
    }

    @Test func unsupportedPayloadCipherIsRefused() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        let (d, path) = try Self.editedLUKS2(g.container) { $0.replacingOccurrences(of: "\"encryption\":\"aes-xts-plain64\",\"sector_size\"", with: "\"encryption\":\"twofish-xts-plain64\",\"sector_size\"") }
        defer { _ = d }
        #expect {
            _ = try LUKSVolume.open(try RawImage(path: path, writable: false), passphrases: Self.passphrases(), name: "x")
        } throws: { e in (e as? ImageError)?.errno == .notSupported && "\(e)".contains("twofish") }
    }

    /// Writes through the decrypting device (unaligned, across sectors) to a copy of the qemu-made
    /// LUKS1 container; qemu-img's LUKS driver must read back the plaintext with the same writes.
    @Test func writesReadBackThroughQemuImg() throws {
        let g = try LUKSFixtures.luksOnLVM()
        let dir = try TempDir("imagemount-luks-write")
        let copy = dir.file("c.luks")
        try Shell.check("cp \(Shell.quote(g.container)) \(Shell.quote(copy))")
        var expected = Array(try Data(contentsOf: URL(fileURLWithPath: g.plaintext)))
        let device = try LUKSVolume.open(try RawImage(path: copy, writable: true), passphrases: Self.passphrases(), name: "x")
        #expect(device.isWritable)
        var rng = SplitMix64(seed: 0x1005)
        for (offset, length) in [(0, 512), (1000, 3000), (4095, 2), (70_000, 131_072), (expected.count - 700, 700)] + (0..<20).map({ _ in
            (Int.random(in: 0..<(expected.count - 70_000), using: &rng), Int.random(in: 1...70_000, using: &rng))
        }) {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            try device.writeBytes(bytes, at: UInt64(offset))
            expected.replaceSubrange(offset..<(offset + length), with: bytes)
        }
        try device.flush()
        #expect(try device.readBytes(at: 0, count: expected.count) == expected)
        let out = dir.file("out.raw")
        try Shell.check("qemu-img convert --object secret,id=sec0,data=\(Shell.quote(LUKSFixtures.passphrase)) --image-opts driver=luks,file.filename=\(copy),key-secret=sec0 -O raw \(out)")
        let back = Array(try Data(contentsOf: URL(fileURLWithPath: out)).prefix(expected.count))
        #expect(back == expected)
    }

    @Test func luks2WritesRoundTripWithTheTestCipher() throws {
        let g = try LUKSFixtures.lvmInLUKS()
        let dir = try TempDir("imagemount-luks2-write")
        let copy = dir.file("c.luks")
        try Shell.check("cp \(Shell.quote(g.container)) \(Shell.quote(copy))")
        let device = try LUKSVolume.open(try RawImage(path: copy, writable: true), passphrases: Self.passphrases(), name: "x")
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try device.writeBytes(bytes, at: 12_345)
        // Decrypt the container independently with the volume key the fixture chose.
        let key = Array(try Data(contentsOf: URL(fileURLWithPath: (g.container as NSString).deletingLastPathComponent + "/volume.key")))
        let offset = Int(try #require(device.header).payloadOffset)
        var raw = Array(try Data(contentsOf: URL(fileURLWithPath: copy))[offset..<(offset + 32768)])
        TestCipher.xts(&raw, key: key, sectorSize: 4096, encrypt: false)
        #expect(Array(raw[12_345..<22_345]) == bytes)
    }
}

@Suite struct LUKS2JSONTests {
    @Test func parsesLUKS2Metadata() throws {
        let text = #"{"keyslots":{"0":{"type":"luks2","key_size":64,"kdf":{"type":"pbkdf2","iterations":1000,"salt":"AAEC"}}},"segments":{"0":{"offset":"16777216","size":"dynamic"}},"x":[true,false,null,-1.5e3,"a\u00e9\n\ud83d\ude00"]}"#
        let json = try LUKS2JSON.parse(Array(text.utf8) + [0, 0, 0])
        #expect(json["keyslots"]?["0"]?["key_size"]?.uint64Value == 64)
        #expect(json["segments"]?["0"]?["offset"]?.uint64Value == 16_777_216)
        #expect(json["x"]?.arrayValue?.count == 5)
        #expect(json["x"]?.arrayValue?[4].stringValue == "aé\n😀")
        #expect(LUKS2Header.base64("AAEC") == [0, 1, 2])
        #expect(LUKS2Header.base64("AAE=") == [0, 1])
    }

    @Test(arguments: [#"{"a":1,}"#, #"{"a":01}"#, #"{"a":"\x"}"#, "[1 2]", #"{"a":1}x"#, #"{"a":1,"a":2}"#,
                      String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "\"tab\there\""])
    func refusesMalformedJSON(_ text: String) {
        #expect(throws: LUKS2JSONError.self) { _ = try LUKS2JSON.parse(Array(text.utf8)) }
    }
}
