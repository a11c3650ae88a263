import Foundation
import Testing
import TestSupport

/// `imagemount cat` and `info` on ext4 guests converted to each VMDK subformat by qemu-img.
@Suite struct VmdkCommandTests {
    static let subformats = ["monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "streamOptimized"]

    @Test(arguments: subformats)
    func catReadsTheGuestFile(_ subformat: String) throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        let dir = try TempDir("imagemount-vmdk-cat")
        let image = dir.file("guest.vmdk")
        try Shell.check("qemu-img convert -O vmdk -o subformat=\(subformat) \(Shell.quote(raw)) \(Shell.quote(image))")
        let expected = try Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/etc/hostname"))
        let result = try ImageMountBinary.run(["cat", "-a", image, "/etc/hostname"])
        #expect(result.status == 0, "\(subformat): \(result.stderr)")
        #expect(result.stdout == expected, "\(subformat)")
    }

    @Test func catThroughAQcow2OverlayOnAVmdkBase() throws {
        let raw = try Fixtures.image("ext4", type: "ext4")
        let dir = try TempDir("imagemount-vmdk-overlay")
        try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img convert -O vmdk \(Shell.quote(raw)) base.vmdk && qemu-img create -q -f qcow2 -b base.vmdk -F vmdk top.qcow2")
        let result = try ImageMountBinary.run(["cat", "-a", dir.file("top.qcow2"), "/etc/hostname"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/etc/hostname"))))
        let chain = try ImageMountBinary.run(["info", "-a", dir.file("top.qcow2"), "--backing-chain"])
        let qemu = try Shell.check("qemu-img info --backing-chain \(Shell.quote(dir.file("top.qcow2")))")
        // disk size of the top image is the same file for both; compare everything.
        #expect(chain.text == qemu, "\(chain.stderr)")
    }
}
