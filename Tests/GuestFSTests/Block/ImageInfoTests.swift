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

/// `ImageInfo` against `qemu-img info` on the same images: same lines, same JSON values.
@Suite struct ImageInfoTests {
    /// qemu-img's text, minus lines we do not reproduce (LUKS key slot details).
    static func qemuText(_ path: String, chain: Bool = false) throws -> String {
        try Shell.check("cd \(Shell.quote((path as NSString).deletingLastPathComponent)) && qemu-img info \(chain ? "--backing-chain " : "")\(Shell.quote(path))")
    }

    @Test("text equals qemu-img info", arguments: ["v2-64k.qcow2", "v3-64k.qcow2", "zstd-64k.qcow2", "extl2-backed.qcow2",
                                                   "extdata-raw.qcow2", "snap.qcow2", "mid.qcow2", "src.raw"])
    func textMatchesQemuImg(_ name: String) throws {
        let path = try Qcow2Fixtures.get().path(name)
        let ours = ImageInfo.text(try ImageInfo.gather(path: path))
        let theirs = try Self.qemuText(path)
        #expect(ours == theirs, "\(ours)\nvs\n\(theirs)")
    }

    @Test func backingChainTextEqualsQemuImg() throws {
        let path = try Qcow2Fixtures.get().path("top.qcow2")
        let infos = try ImageInfo.gather(path: path, backingChain: true)
        #expect(infos.map(\.format) == [.qcow2, .qcow2, .raw])
        #expect(ImageInfo.text(infos) == (try Self.qemuText(path, chain: true)))
    }

    @Test("JSON values equal qemu-img info --output=json", arguments: ["snap.qcow2", "extdata.qcow2", "top.qcow2"])
    func jsonMatchesQemuImg(_ name: String) throws {
        let path = try Qcow2Fixtures.get().path(name)
        let ours = ImageInfo.json(try ImageInfo.gather(path: path, backingChain: true), chain: true)
        let theirs = try Shell.check("qemu-img info --output=json --backing-chain \(Shell.quote(path))")
        let a = try JSONSerialization.jsonObject(with: Data(ours.utf8)) as? NSArray
        let b = try JSONSerialization.jsonObject(with: Data(theirs.utf8)) as? NSArray
        #expect(a != nil && a == b, "\(ours)\nvs\n\(theirs)")
    }

    @Test func corruptAndDirtyBitsAreReported() throws {
        let dir = try TempDir("imagemount-info")
        let path = dir.file("c.qcow2")
        try FileManager.default.copyItem(atPath: try Qcow2Fixtures.get().path("v3-64k.qcow2"), toPath: path)
        try RawImage(path: path, writable: true).writeBytes([0, 0, 0, 0, 0, 0, 0, 3], at: 72)
        let info = try #require(try ImageInfo.gather(path: path).first)
        #expect(info.dirty && info.specific?.value("corrupt") == .bool(true))
        #expect(info.text.contains("dirty flag: yes") && info.text.contains("corrupt: true"))
    }

    @Test func humanSizes() {
        #expect(ImageInfo.humanSize(0) == "0 B")
        #expect(ImageInfo.humanSize(999) == "999 B")
        #expect(ImageInfo.humanSize(1000) == "0.977 KiB")
        #expect(ImageInfo.humanSize(200704) == "196 KiB")
        #expect(ImageInfo.humanSize(4 << 20) == "4 MiB")
    }
}
