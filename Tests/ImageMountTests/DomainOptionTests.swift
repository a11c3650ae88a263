import Foundation
import Testing
import TestSupport

/// `-d DOMAIN`: disks come from a libvirt domain's XML, in order, with their formats.
@Suite struct DomainOptionTests {
    func domainDir(_ xml: String, name: String = "guest1") throws -> TempDir {
        let dir = try TempDir()
        try Data(xml.utf8).write(to: URL(fileURLWithPath: dir.file(name + ".xml")))
        return dir
    }

    func xml(_ disks: [(path: String, format: String)]) -> String {
        let items = disks.map { d in
            "<disk type='file' device='disk'><driver name='qemu' type='\(d.format)'/><source file='\(d.path)'/><target dev='vda' bus='virtio'/></disk>"
        }.joined(separator: "\n")
        return """
            <domain type='kvm'><name>guest1</name><memory>1024</memory><devices>
            <disk type='file' device='cdrom'><source file='/nonexistent/install.iso'/><target dev='sda'/><readonly/></disk>
            \(items)
            </devices></domain>
            """
    }

    @Test func disksOfTheDomainAreUsedInOrder() throws {
        let images = try GuestFixtures.twoRoots()
        let dir = try domainDir(xml([(images[0], "raw"), (images[1], "raw")]))
        let env = ["IMAGEMOUNT_LIBVIRT_DIR": dir.path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let second = try ImageMountBinary.run(["cat", "-d", "guest1", "--root", "/dev/sdb", "/etc/hostname"], environment: env)
        #expect(second.status == 0 && second.text == "second-os\n", "\(second.stderr)")
        let inspect = try ImageMountBinary.run(["inspect", "-d", "guest1"], environment: env)
        #expect(inspect.text.contains("<hostname>first-os</hostname>") && inspect.text.contains("<hostname>second-os</hostname>"))
    }

    @Test func formatFromTheDriverElementIsHonoured() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let dir = try domainDir(xml([(image, "qcow2")]))
        let result = try ImageMountBinary.run(["cat", "-d", "guest1", "/etc/hostname"], environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.path])
        // The XML says qcow2, the file is raw: opening it as qcow2 must fail rather than guess.
        #expect(result.status == 1 && result.stderr.contains(image), "\(result.stderr)")
    }

    @Test func unknownDomainAndBadXML() throws {
        let dir = try domainDir("<domain><devices><disk", name: "broken")
        let env = ["IMAGEMOUNT_LIBVIRT_DIR": dir.path]
        let missing = try ImageMountBinary.run(["cat", "-d", "nosuch", "/etc/hostname"], environment: env)
        #expect(missing.status == 1 && missing.stderr.contains("nosuch"), "\(missing.stderr)")
        let broken = try ImageMountBinary.run(["cat", "-d", "broken", "/etc/hostname"], environment: env)
        #expect(broken.status == 1 && broken.stderr.contains("not well-formed"), "\(broken.stderr)")
    }
}
