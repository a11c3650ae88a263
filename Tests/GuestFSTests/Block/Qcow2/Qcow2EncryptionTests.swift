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

/// Encrypted qcow2 images made by qemu-img (`encrypt.format=luks` with several cipher, IV and
/// hash choices, and legacy `encrypt.format=aes`), read through `Qcow2Image` and compared with
/// `qemu-img convert -O raw` of the same image with the same secret.
final class Qcow2EncryptedFixtures: Sendable {
    static let passphrase = "correct horse battery staple"
    static let size = 3 * 1024 * 1024 + 1536
    let dir: TempDir

    /// (file, -o options beyond format and secret). iter-time keeps PBKDF2 short for tests.
    static let luksImages: [(name: String, options: String)] = [
        ("luks-default.qcow2", ""),
        ("luks-cbc-essiv.qcow2", "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1"),
        ("luks-cbc-plain.qcow2", "encrypt.cipher-alg=aes-256,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain,encrypt.hash-alg=sha512"),
        // aes-192 is left out: qemu-img 7.2 aborts creating it (24-byte keys make key material that is
        // no whole number of sectors: crypto/block.c assertion).
        ("luks-cbc-plain64.qcow2", "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=plain64,encrypt.hash-alg=sha256"),
        ("luks-xts128-4k.qcow2", "encrypt.cipher-alg=aes-128,encrypt.cipher-mode=xts,cluster_size=4096"),
    ]
    static let aesImage = "aes-legacy.qcow2"
    /// An encrypted overlay with extended L2 entries over a plain raw backing file (src.raw), and
    /// an image with an internal snapshot "one" sharing its clusters: the writer's copy-on-write cases.
    static let extendedL2Image = "luks-extl2-backed.qcow2", snapshotImage = "luks-snap.qcow2"

    private static let built: Result<Qcow2EncryptedFixtures, any Error> = Result { try Qcow2EncryptedFixtures() }
    static func get() throws -> Qcow2EncryptedFixtures { try built.get() }
    func path(_ name: String) -> String { dir.file(name) }

    static func secretObject(_ pass: String = passphrase) -> String { "--object secret,id=sec0,data=\(Shell.quote(pass))" }

    private init() throws {
        dir = try TempDir("imagemount-qcow2-crypt")
        try Data(Qcow2Fixtures.sourceBytes(count: Self.size)).write(to: URL(fileURLWithPath: dir.file("src.raw")))
        // qemu-img benchmarks PBKDF2 when it creates a LUKS header and, on a loaded machine, can
        // fail with "Unable to get accurate CPU usage": creation is retried.
        var script = ["set -e", "cd \(Shell.quote(dir.path))", LUKSFixtures.retryFunction]
        // Unaligned writes, zeroed ranges and a discard on top, so that not every cluster is
        // allocated in order.
        let writes = ["write -P 0x33 1000001 5000", "write -z 40k 30k", "discard 2M 128k", "write -P 0x55 3144704 2048"]
            .map { "-c " + Shell.quote($0) }.joined(separator: " ")
        for (name, options) in Self.luksImages {
            let o = ["encrypt.format=luks", "encrypt.key-secret=sec0", "encrypt.iter-time=100"] + (options.isEmpty ? [] : [options])
            script.append("retry qemu-img convert \(Self.secretObject()) -O qcow2 -o \(o.joined(separator: ",")) src.raw \(name)")
            script.append("qemu-io \(Self.secretObject()) --image-opts driver=qcow2,file.filename=\(name),encrypt.key-secret=sec0 \(writes) >/dev/null")
        }
        script.append("qemu-img convert \(Self.secretObject()) -O qcow2 -o encrypt.format=aes,encrypt.key-secret=sec0 src.raw \(Self.aesImage)")
        let luks = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=100"
        let extl2 = Self.extendedL2Image, snap = Self.snapshotImage
        func opts(_ name: String) -> String { "--image-opts driver=qcow2,file.filename=\(name),encrypt.key-secret=sec0" }
        script.append("retry qemu-img create -q \(Self.secretObject()) -f qcow2 -o \(luks),extended_l2=on,cluster_size=32768 -b src.raw -F raw \(extl2) \(Self.size)")
        script.append("qemu-io \(Self.secretObject()) \(opts(extl2)) -c 'write -P 0x71 2k 2k' -c 'write -z 8k 4k' -c 'write -P 0x73 100k 33k' -c 'discard 1M 32k' >/dev/null")
        script.append("retry qemu-img convert \(Self.secretObject()) -O qcow2 -o \(luks) src.raw \(snap)")
        script.append("qemu-img snapshot \(Self.secretObject()) \(opts(snap)) -c one")
        script.append("qemu-io \(Self.secretObject()) \(opts(snap)) -c 'write -P 0xa1 0 1M' -c 'write -z 2M 64k' >/dev/null")
        for name in Self.luksImages.map(\.name) + [Self.aesImage, extl2, snap] {
            script.append("qemu-img convert \(Self.secretObject()) --image-opts driver=qcow2,file.filename=\(name),encrypt.key-secret=sec0 -O raw \(name).raw")
        }
        try Shell.check(script.joined(separator: "\n"))
    }

    func oracle(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path(name + ".raw")))) }
}

@Suite struct Qcow2EncryptionTests {
    static func keys(_ pass: String = Qcow2EncryptedFixtures.passphrase) -> KeyStore {
        KeyStore(entries: [.init(id: "all", secret: SecretBytes(utf8: pass))])
    }

    static func open(_ path: String, keys: KeyStore?, writable: Bool = false) throws -> Qcow2Image {
        let file = try RawImage(path: path, writable: false)
        return try Qcow2Image(device: file, options: ImageOpenOptions(writable: writable, keys: keys))
    }

    @Test(arguments: Qcow2EncryptedFixtures.luksImages.map(\.name) + [Qcow2EncryptedFixtures.aesImage,
                     Qcow2EncryptedFixtures.extendedL2Image, Qcow2EncryptedFixtures.snapshotImage])
    func readsLikeQemuImg(_ name: String) throws {
        let f = try Qcow2EncryptedFixtures.get()
        let image = try Self.open(f.path(name), keys: Self.keys())
        #expect(image.encryptionFormat == (name.hasPrefix("aes") ? "aes" : "luks"))
        try Qcow2ImageTests.compare(image, with: try f.oracle(name), unit: Qcow2ImageTests.unit(of: image), label: name)
    }

    @Test func headerNamesTheCipher() throws {
        let f = try Qcow2EncryptedFixtures.get()
        let image = try Self.open(f.path("luks-cbc-essiv.qcow2"), keys: Self.keys())
        let header = try #require(image.luksHeader)
        #expect(header.version == 1)
        #expect(header.payloadCipher.description == "aes-cbc-essiv:sha256 (128-bit key)")
        let defaultImage = try Self.open(f.path("luks-default.qcow2"), keys: Self.keys())
        #expect(defaultImage.luksHeader?.payloadCipher.description == "aes-xts-plain64 (512-bit key)")
    }

    @Test func wrongKeyIsAClearErrorWithoutTheKey() throws {
        let f = try Qcow2EncryptedFixtures.get()
        let wrong = "not-the-passphrase-42"
        do {
            _ = try Self.open(f.path("luks-default.qcow2"), keys: Self.keys(wrong))
            Issue.record("opened with a wrong key")
        } catch let e as ImageError {
            #expect(e.errno == .permissionDenied)
            #expect(e.description.contains("matches no key slot"))
            #expect(e.description.contains(f.path("luks-default.qcow2")))
            #expect(!e.description.contains(wrong))
        }
    }

    @Test func missingKeyNamesTheImage() throws {
        let f = try Qcow2EncryptedFixtures.get()
        for name in ["luks-default.qcow2", Qcow2EncryptedFixtures.aesImage] {
            #expect {
                _ = try Self.open(f.path(name), keys: nil)
            } throws: { error in
                guard let e = error as? ImageError else { return false }
                return e.errno == .permissionDenied && e.description.contains(f.path(name)) && e.description.contains("no key was given")
            }
        }
    }

    @Test func keysAreLookedUpByName() throws {
        let f = try Qcow2EncryptedFixtures.get()
        let path = f.path("luks-default.qcow2")
        let byDrive = KeyStore(entries: [.init(id: "/dev/sda", secret: SecretBytes(utf8: Qcow2EncryptedFixtures.passphrase)),
                                         .init(id: "/dev/sdb", secret: SecretBytes(utf8: "other"))])
        let file = try RawImage(path: path, writable: false)
        _ = try Qcow2Image(device: file, options: ImageOpenOptions(keys: byDrive, keyIDs: ["/dev/sda"]))
        // A key for another drive is not tried.
        #expect(throws: ImageError.self) {
            _ = try Qcow2Image(device: file, options: ImageOpenOptions(keys: byDrive, keyIDs: ["/dev/sdc"]))
        }
        // The fallback (the CLI's prompt) is asked once when no selector applies.
        let asked = Locked(0)
        let prompting = KeyStore(fallback: { _ in asked.withValue { $0 += 1 }; return SecretBytes(utf8: Qcow2EncryptedFixtures.passphrase) })
        _ = try Qcow2Image(device: file, options: ImageOpenOptions(keys: prompting))
        _ = try Qcow2Image(device: file, options: ImageOpenOptions(keys: prompting))
        #expect(asked.value == 1)
    }

    @Test func legacyAESRefusesWriting() throws {
        let f = try Qcow2EncryptedFixtures.get()
        let before = try Data(contentsOf: URL(fileURLWithPath: f.path(Qcow2EncryptedFixtures.aesImage)))
        #expect {
            _ = try Self.open(f.path(Qcow2EncryptedFixtures.aesImage), keys: Self.keys(), writable: true)
        } throws: { error in
            (error as? ImageError)?.description.contains("convert the image first") == true
        }
        let image = try Self.open(f.path(Qcow2EncryptedFixtures.aesImage), keys: Self.keys())
        #expect(throws: ImageError.self) { try image.writeBytes([1, 2, 3], at: 0) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: f.path(Qcow2EncryptedFixtures.aesImage))) == before)
    }

    /// A copy of a fixture with bytes patched in its LUKS header (found through the FDE pointer).
    static func damagedCopy(_ name: String, _ patch: (inout [UInt8], _ luksStart: Int) -> Void) throws -> (TempDir, String) {
        let f = try Qcow2EncryptedFixtures.get()
        let dir = try TempDir("imagemount-luks-damage")
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: f.path(name))))
        let meta = try Qcow2Metadata.read(from: RawImage(path: f.path(name), writable: false))
        let start = Int(try #require(meta.extensions.encryptionHeader).offset)
        patch(&bytes, start)
        let out = dir.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        return (dir, out)
    }

    static func putBE32(_ bytes: inout [UInt8], _ at: Int, _ value: UInt32) {
        for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * i)) }
    }

    @Test func damagedKeyslotIsNamed() throws {
        // Key slot 0 (phdr offset 208): stripes at +44, key material offset at +40.
        let (d1, stripes) = try Self.damagedCopy("luks-default.qcow2") { b, s in Self.putBE32(&b, s + 208 + 44, 1) }
        let (d2, offset) = try Self.damagedCopy("luks-default.qcow2") { b, s in Self.putBE32(&b, s + 208 + 40, 0x7FFF_FFFF) }
        let (d3, material) = try Self.damagedCopy("luks-default.qcow2") { b, s in
            let sector = Int(b[s + 208 + 40]) << 24 | Int(b[s + 208 + 41]) << 16 | Int(b[s + 208 + 42]) << 8 | Int(b[s + 208 + 43])
            for i in 0..<4096 { b[s + sector * 512 + i] ^= 0xFF }
        }
        defer { _ = (d1, d2, d3) }
        for (path, words) in [(stripes, "AF stripes"), (offset, "runs past the end"), (material, "matches no key slot")] {
            do {
                _ = try Self.open(path, keys: Self.keys())
                Issue.record("\(path): opened")
            } catch let e as ImageError {
                #expect(e.description.contains(words), "\(e.description)")
                #expect(e.errno == .permissionDenied)
            }
        }
    }

    @Test func unsupportedCipherIsRefused() throws {
        let (d, path) = try Self.damagedCopy("luks-default.qcow2") { b, s in
            for (i, c) in Array("serpent\0".utf8).enumerated() { b[s + 8 + i] = c }
        }
        defer { _ = d }
        #expect {
            _ = try Self.open(path, keys: Self.keys())
        } throws: { error in
            guard let e = error as? ImageError else { return false }
            return e.errno == .notSupported && e.description.contains("serpent")
        }
    }

    @Test func hostileIterationCountIsRefusedQuickly() throws {
        // Slot 0's iteration count (+4) set to 2^32-1: refused before any PBKDF2 runs.
        let (d, path) = try Self.damagedCopy("luks-default.qcow2") { b, s in Self.putBE32(&b, s + 208 + 4, 0xFFFF_FFFF) }
        defer { _ = d }
        let start = DispatchTime.now()
        #expect(throws: ImageError.self) { _ = try Self.open(path, keys: Self.keys()) }
        #expect(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds < 5_000_000_000)
    }
}
