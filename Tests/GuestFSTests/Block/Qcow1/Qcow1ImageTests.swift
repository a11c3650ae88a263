import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// qcow (version 1) images made by qemu-img (4 KiB and 512 B clusters, compressed clusters, a
/// qcow overlay over a compressed qcow base), read as `qemu-img convert -f qcow -O raw` reads
/// them; probing against qcow2; legacy AES images read with their key; writes refused; damaged
/// headers and tables.
@Suite struct Qcow1ImageTests {
    static let names = FormatFixtures.images.filter { $0.format == .qcow }.map(\.name)

    @Test("qcow reads equal qemu-img convert -O raw", arguments: names)
    func matchesOracle(_ name: String) throws {
        try OtherFormatChecks.matchesOracle(name, as: Qcow1Image.self, unit: 4096)
    }

    @Test("info is qemu-img info's", arguments: names)
    func infoMatches(_ name: String) throws {
        try OtherFormatChecks.infoMatches(try FormatFixtures.get().path(name))
    }

    @Test func overlayInfoWithBackingChain() throws {
        try OtherFormatChecks.infoMatches(try FormatFixtures.get().path("qcow-overlay.qcow"), chain: true)
    }

    /// Version 1 is qcow's, 2 and 3 are qcow2's (QEMU's qcow_probe and qcow2_probe): a qcow image
    /// is no longer misread as qcow2 ("cluster_bits 0 is outside 9...21").
    @Test func versionOneProbesAsQcowNotQcow2() throws {
        let f = try FormatFixtures.get()
        let header = try RawImage(path: f.path("qcow-converted.qcow"), writable: false).readBytes(at: 0, count: 512)
        #expect(ImageFormat.probe(header: header) == .qcow)
        var v2 = header
        v2[7] = 2
        #expect(ImageFormat.probe(header: v2) == .qcow2)
        var v0 = header
        v0[7] = 0
        #expect(ImageFormat.probe(header: v0) == .raw)
        #expect(ImageFormat.probe(header: Array(header.prefix(47))) == .raw)
    }

    @Test func writableOpensAreRefusedInOneLine() throws {
        let f = try FormatFixtures.get()
        VHDCorruptionTests.expectError(["writing qcow (version 1) images is not supported", "qemu-img convert -O qcow2"]) {
            _ = try ImageOpener.open(path: f.path("qcow-converted.qcow"), format: .qcow, writable: true)
        }
    }

    /// Legacy AES (qcow_open, QCOW_CRYPT_AES): an image qemu-img converted from a partly
    /// allocated raw file, with unaligned qemu-io writes on top, reads with the key as
    /// `qemu-img convert` reads it with the same secret, including reads that start and end
    /// inside 512-byte sectors; `info` shows it as qemu-img does.
    @Test func aesEncryptedImagesReadWithTheirKey() throws {
        let dir = try TempDir("imagemount-qcow-aes")
        let size = 3 << 20
        var bytes = [UInt8](repeating: 0, count: size)
        var rng = SplitMix64(seed: 0xAE5)
        for i in stride(from: 0, to: size, by: 8) where (i >> 16) % 3 != 1 {
            withUnsafeBytes(of: rng.next()) { for (k, b) in $0.enumerated() { bytes[i + k] = b } }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("src.raw")))
        let path = dir.file("aes.qcow"), pass = "a key: with spaces"
        let secret = "--object secret,id=s0,data=\(Shell.quote(pass))"
        let opts = "driver=qcow,file.filename=\(Shell.quote(path)),encrypt.key-secret=s0"
        try Shell.check("""
            cd \(Shell.quote(dir.path)) && qemu-img convert -q \(secret) -O qcow -o encrypt.format=aes,encrypt.key-secret=s0 src.raw aes.qcow \
            && qemu-io \(secret) --image-opts \(opts) -c 'write -P 0x5a 70001 9000' -c 'write -P 0x17 1048000 100000' >/dev/null \
            && qemu-img convert -q \(secret) --image-opts \(opts) -O raw oracle.raw
            """)
        try OtherFormatChecks.infoMatches(path)
        let keys = KeyStore(entries: [.init(id: "all", secret: SecretBytes(utf8: pass))])
        let device = try ImageOpener.open(path: path, options: ImageOpenOptions(keys: keys))
        #expect(device is Qcow1Image)
        let oracle = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.file("oracle.raw"))))
        try Qcow2ImageTests.compare(device, with: oracle, unit: 4096, label: "aes.qcow")
        // Without a key: one line naming the image and how to give it.
        VHDCorruptionTests.expectError([path, "AES-encrypted", "no key was given", "--key"]) {
            _ = try ImageOpener.open(path: path, format: nil, writable: false)
        }
    }

    @Test(arguments: [
        (UInt64(32), UInt64(17), 1, "cluster size must be between 512 and 64k"),
        (32, 8, 1, "cluster size must be between 512 and 64k"),
        (33, 5, 1, "L2 table size must be between 512 and 64k"),
        (33, 14, 1, "L2 table size must be between 512 and 64k"),
        (36, 2, 4, "invalid encryption method 2"),
        (24, 1, 8, "too small"),
        (24, 1 << 62, 8, "more than imagemount's limit"),
        (24, UInt64.max, 8, "too large"),
        (4, 4, 4, "QCOW version 4 is not 1"),
    ] as [(UInt64, UInt64, Int, String)])
    func damagedHeaderFields(_ offset: UInt64, _ value: UInt64, _ width: Int, _ words: String) throws {
        let p = try PatchedImage("qcow-converted.qcow", format: .qcow)
        try p.be(offset, value, width: width)
        VHDCorruptionTests.expectError([p.path, "qcow header at 0x\(String(offset, radix: 16))", words]) { _ = try p.open() }
        // info reads the same header and refuses it the same way.
        VHDCorruptionTests.expectError(["qcow header", words]) { _ = try ImageInfo.gather(path: p.path, format: .qcow) }
    }

    /// qcow_create writes the whole L1 table: one that runs past the end of the file is refused
    /// (QEMU would read zeros there), so a small file cannot make us allocate a large table.
    @Test func l1TablePastTheEndOfTheFile() throws {
        let p = try PatchedImage("qcow-converted.qcow", format: .qcow)
        try p.be(24, 1 << 42, width: 8)    // 2 Mi L1 entries: 16 MiB of table, more than the 5 MiB file
        VHDCorruptionTests.expectError([p.path, "qcow header at 0x28", "runs past the end of the file"]) { _ = try p.open() }
        // info reads no table, as qemu-img info.
        #expect(try ImageInfo.gather(path: p.path, format: .qcow).first?.virtualSize == 1 << 42)
    }

    @Test func backingNameTooLong() throws {
        let p = try PatchedImage("qcow-overlay.qcow", format: .qcow)
        try p.be(16, 2000, width: 4)
        VHDCorruptionTests.expectError(["qcow header at 0x10", "backing file name of 2000 bytes is too long"]) { _ = try p.open() }
    }

    /// The L1 and L2 tables of guest cluster 0 of a fixture copy.
    static func l2Entry0(_ p: PatchedImage) throws -> (l2: UInt64, entry: UInt64) {
        let l1 = try p.beValue(40, width: 8)
        let l2 = try p.beValue(l1, width: 8)
        return (l2, try p.beValue(l2, width: 8))
    }

    /// A damaged L2 entry fails the reads that meet it, in one line, and no others.
    @Test func unalignedClusterFailsItsReadOnly() throws {
        let p = try PatchedImage("qcow-converted.qcow", format: .qcow)
        let (l2, entry) = try Self.l2Entry0(p)
        let expected = try p.oracle()
        try p.be(l2, entry | 0x100 | 1, width: 8)
        let device = try p.open()
        VHDCorruptionTests.expectError(["qcow L2 table at 0x\(String(l2, radix: 16))", "not sector-aligned"]) {
            _ = try device.readBytes(at: 100, count: 10)
        }
        #expect(Qcow2ImageTests.same(try device.readBytes(at: 4096, count: 1 << 20), expected[4096 ..< 4096 + (1 << 20)]))
    }

    @Test func corruptCompressedClusterFailsItsRead() throws {
        let p = try PatchedImage("qcow-compressed.qcow", format: .qcow)
        let (_, entry) = try Self.l2Entry0(p)
        #expect(entry & Qcow1Format.compressedFlag != 0)
        let host = entry & ((1 << 51) - 1)
        try p.patch(host, [UInt8](repeating: 0xFF, count: 64))
        let device = try p.open()
        VHDCorruptionTests.expectError(["qcow compressed cluster at 0x\(String(host, radix: 16))"]) {
            _ = try device.readBytes(at: 0, count: 512)
        }
    }

    /// An overlay naming itself as its backing file: one line naming the loop, no recursion.
    @Test func backingLoopIsRefused() throws {
        let p = try PatchedImage("qcow-overlay.qcow", format: .qcow)
        let name = Array("qcow-overlay.qcow".utf8)
        try p.be(16, UInt64(name.count), width: 4)
        try p.patch(try p.beValue(8, width: 8), name)
        VHDCorruptionTests.expectError(["backing chain loops back"]) { _ = try p.open() }
        VHDCorruptionTests.expectError(["backing chain loops back"]) { _ = try ImageInfo.gather(path: p.path, format: .qcow, backingChain: true) }
    }

    /// The probing policy: a probed qcow whose name does not say qcow opens no backing file.
    @Test func probedImageDoesNotOpenItsBackingFile() throws {
        let p = try PatchedImage("qcow-overlay.qcow", format: .qcow)
        let disguised = p.dir.file("disk.img")
        try FileManager.default.moveItem(atPath: p.path, toPath: disguised)
        VHDCorruptionTests.expectError(["its format was probed, not given", "--format=qcow"]) {
            _ = try ImageOpener.open(path: disguised, format: nil, writable: false)
        }
    }
}
