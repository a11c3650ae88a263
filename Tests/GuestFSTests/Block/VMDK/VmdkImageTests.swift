import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock

/// Every byte read through `VmdkImage` equals what `qemu-img convert -O raw` makes of the image,
/// and `info` prints what `qemu-img info` prints.
@Suite struct VmdkImageTests {
    @Test("image reads equal qemu-img convert -O raw", arguments: VmdkFixtures.matrix)
    func matchesOracle(_ name: String) throws {
        let f = try VmdkFixtures.get()
        let device = try ImageOpener.open(path: f.path(name), format: nil, writable: false)
        try Qcow2ImageTests.compare(device, with: try f.oracle(name), unit: 65536, label: name)
    }

    @Test("info text and JSON equal qemu-img info", arguments: ["mono.vmdk", "compat6.vmdk", "zeroed.vmdk", "flat.vmdk", "twogb-sparse.vmdk",
                                                                "twogb-flat.vmdk", "stream.vmdk", "stream-footer.vmdk", "child.vmdk", "multi.vmdk", "esxi.vmdk"])
    func infoMatchesQemuImg(_ name: String) throws {
        let f = try VmdkFixtures.get()
        let path = f.path(name)
        let file = try RawImage(path: path, writable: false)
        let info = try ImageInfo.describe(file)
        // qemu-img sums the disk usage of every extent file; ours counts the descriptor's.
        func dropDiskSize(_ s: String) -> String { s.split(separator: "\n").filter { !$0.hasPrefix("disk size:") }.joined(separator: "\n") }
        // ... and for a hand-made descriptor qemu-img's check of it fails, so it prints no dirty flag.
        func dropActual(_ s: String) -> String {
            s.split(separator: "\n").filter { !$0.contains("\"actual-size\"") && !$0.contains("\"dirty-flag\"") }
                .joined(separator: "\n").replacingOccurrences(of: "},\n}", with: "}\n}")
        }
        let text = try Shell.check("qemu-img info \(Shell.quote(path))")
        let json = try Shell.check("qemu-img info --output=json \(Shell.quote(path))")
        if name.hasPrefix("mono") || name == "stream.vmdk" || name == "zeroed.vmdk" || name == "compat6.vmdk" {
            #expect(info.text == text)
            #expect(ImageInfo.json([info], chain: false) == json)
        } else {
            #expect(dropDiskSize(info.text) == dropDiskSize(text))
            #expect(dropActual(ImageInfo.json([info], chain: false)) == dropActual(json))
        }
    }

    @Test func probedAsVmdkAndStreamOptimizedWritableOpensAreRefused() throws {
        let f = try VmdkFixtures.get()
        for name in ["mono.vmdk", "flat.vmdk", "stream.vmdk"] {
            let header = try RawImage(path: f.path(name), writable: false).readBytes(at: 0, count: 512)
            #expect(ImageFormat.probe(header: header) == .vmdk, "\(name)")
        }
        let error = #expect(throws: ImageError.self) { try ImageOpener.open(path: f.path("stream.vmdk"), format: .vmdk, writable: true) }
        #expect(error?.reason == VmdkImage.streamRefusal)
    }

    /// A descriptor whose name does not say vmdk, probed, must not open its extent files.
    @Test func probedDescriptorUnderAnotherNameOpensNoExtent() throws {
        let f = try VmdkFixtures.get()
        let renamed = f.path("flat-descriptor.img")
        try? FileManager.default.removeItem(atPath: renamed)
        try FileManager.default.copyItem(atPath: f.path("flat.vmdk"), toPath: renamed)
        do {
            _ = try ImageOpener.open(path: renamed, format: nil, writable: false)
            Issue.record("opened the extent file of a probed descriptor")
        } catch let e as ImageError {
            #expect(e.reason.contains("--format=vmdk"), "\(e)")
        }
        let vouched = try ImageOpener.open(path: renamed, format: .vmdk, writable: false)
        #expect(vouched.size == UInt64(VmdkFixtures.virtualSize))
    }

    @Test func parentCIDMismatchFailsReadsThatReachTheParent() throws {
        let f = try VmdkFixtures.get()
        let dir = try TempDir("imagemount-vmdk-cid")
        try Shell.check("cd \(Shell.quote(dir.path)) && cp \(Shell.quote(f.path("mono.vmdk"))) base.vmdk && qemu-img create -q -f vmdk -b base.vmdk -F vmdk top.vmdk && qemu-io -f vmdk -c 'write -P 0x11 0 64k' top.vmdk >/dev/null && qemu-io -f vmdk -c 'write -P 0x12 1M 4k' base.vmdk >/dev/null")
        let device = try ImageOpener.open(path: dir.file("top.vmdk"), format: nil, writable: false)
        #expect(try device.readBytes(at: 0, count: 16) == [UInt8](repeating: 0x11, count: 16))
        #expect(throws: ImageError.self) { try device.readBytes(at: 1 << 20, count: 16) }
    }
}
