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

    /// `<disk type='network'>` with libvirt's network sources (protocol nbd over a Unix socket
    /// and over TCP, protocol rbd with a monitor host and an auth user) opens the disk they
    /// name, and reads the same file as the local image; an unsupported protocol is skipped.
    func networkXML(_ source: String, format: String = "raw", auth: String = "") -> String {
        """
        <domain type='kvm'><name>guest1</name><devices>
        <disk type='network' device='disk'><driver name='qemu' type='\(format)'/>\(source)\(auth)<target dev='vda' bus='virtio'/></disk>
        </devices></domain>
        """
    }

    @Test func networkDisksOverNBD() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let local = try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"])
        let unix = try NBDServer.qemuNBD(try Fixtures.qcow2(image), format: "qcow2", writable: false)
        defer { unix.stop() }
        let tcp = try NBDServer.nbdkit("file file=\(Shell.quote(image))", tcp: true)
        defer { tcp.stop() }
        let sources = [
            "<source protocol='nbd'><host transport='unix' socket='\(unix.socket)'/></source>",
            "<source protocol='nbd' name=''><host name='127.0.0.1' port='\(tcp.port ?? 0)'/></source>",
        ]
        for source in sources {
            let dir = try domainDir(networkXML(source))
            let result = try ImageMountBinary.run(["cat", "-d", "guest1", "/etc/hostname"], environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.path])
            #expect(result.status == 0 && result.text == local, "\(source): \(result.stderr)")
        }
        // iSCSI is not a source imagemount opens: the domain then has no usable disk.
        let dir = try domainDir(networkXML("<source protocol='iscsi' name='iqn.2013-07.com.example:iscsi-pool/1'><host name='127.0.0.1' port='3260'/></source>"))
        let none = try ImageMountBinary.run(["cat", "-d", "guest1", "/etc/hostname"], environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.path])
        #expect(none.status != 0)
    }

    @Test func networkDiskOverRBD() throws {
        let cluster = try CephCluster.shared()
        let image = try Fixtures.image("ext4", type: "ext4")
        let local = try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"])
        let (name, _) = try cluster.importImage(image, prefix: "domain")
        let parts = cluster.monitor.split(separator: ":")
        let source = "<source protocol='rbd' name='rbd/\(name)'><host name='\(parts[0])' port='\(parts.count > 1 ? parts[1] : "6789")'/></source>"
        let auth = "<auth username='admin'><secret type='ceph' usage='client.admin secret'/></auth>"
        let dir = try domainDir(networkXML(source, auth: auth))
        // The test cluster's own ceph.conf and keyring, as a host that runs the domain has them
        // in /etc/ceph; the monitor and the user come from the XML.
        let result = try ImageMountBinary.run(["cat", "-d", "guest1"] + cluster.arguments + ["/etc/hostname"],
                                              environment: ["IMAGEMOUNT_LIBVIRT_DIR": dir.path])
        #expect(result.status == 0 && result.text == local, "\(result.stderr)")
    }
}
