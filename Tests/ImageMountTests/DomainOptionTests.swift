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

    /// `<auth><secret type='ceph' uuid=…/>`: the key comes from `virsh secret-get-value UUID`
    /// (a stub virsh printing the test cluster's client.admin key), not from a keyring: the
    /// configuration given names none. The same domain with a wrong key in the secret store
    /// fails to authenticate, so the key really is the one used.
    @Test func cephKeyFromLibvirtsSecretStore() throws {
        let cluster = try CephCluster.shared()
        let image = try Fixtures.image("ext4", type: "ext4")
        let local = try ImageMountBinary.check(["cat", "-a", image, "/etc/hostname"])
        let (name, _) = try cluster.importImage(image, prefix: "secret")
        let parts = cluster.monitor.split(separator: ":")
        let uuid = "4f0c2a1e-9d3b-4c6a-8e21-0123456789ab"
        let source = "<source protocol='rbd' name='rbd/\(name)'><host name='\(parts[0])' port='\(parts.count > 1 ? parts[1] : "6789")'/></source>"
        let auth = "<auth username='admin'><secret type='ceph' uuid='\(uuid)'/></auth>"
        let bin = try TempDir()
        try Data(networkXML(source, auth: auth).utf8).write(to: URL(fileURLWithPath: bin.file("guest1.xml")))
        // The cluster's configuration without its keyring line: the key must come from virsh.
        let conf = bin.file("ceph.conf")
        try Shell.check("grep -v '^keyring' \(Shell.quote(cluster.conf)) > \(Shell.quote(conf))")
        let key = try Shell.check("awk '/\\[client.admin\\]/ { found = 1 } found && $1 == \"key\" { print $3; exit }' \(Shell.quote(cluster.keyring))")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.count == 40, "\(key)")
        let log = bin.file("calls")
        func stub(printing value: String) throws {
            let script = """
                #!/bin/sh
                echo "$@" >> \(Shell.quote(log))
                [ "$1" = -c ] && shift 2
                case "$1" in
                dumpxml) cat \(Shell.quote(bin.file("guest1.xml"))) ;;
                secret-get-value) [ "$2" = \(uuid) ] && echo \(Shell.quote(value)) ;;
                *) exit 1 ;;
                esac
                """
            try Data(script.utf8).write(to: URL(fileURLWithPath: bin.file("virsh")))
            _ = try Shell.check("chmod +x \(Shell.quote(bin.file("virsh")))")
        }
        let env = ["PATH": bin.path + ":/usr/sbin:/usr/bin:/sbin:/bin", "IMAGEMOUNT_LIBVIRT_DIR": "/nonexistent",
                   "IMAGEMOUNT_RBD_TIMEOUT": "5"]
        // Without the secret (no keyring anywhere) the connection is refused: the test can fail.
        let other = try Shell.check("ceph-authtool --gen-print-key").trimmingCharacters(in: .whitespacesAndNewlines)
        try stub(printing: other)
        let wrong = try ImageMountBinary.run(["cat", "-c", "qemu:///system", "-d", "guest1", "--rbd-conf", conf, "/etc/hostname"], environment: env)
        #expect(wrong.status != 0 && wrong.stderr.contains("libvirt secret"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains(other), "the key was printed: \(wrong.stderr)")
        try stub(printing: key)
        let result = try ImageMountBinary.run(["cat", "-c", "qemu:///system", "-d", "guest1", "--rbd-conf", conf, "/etc/hostname"], environment: env)
        #expect(result.status == 0 && result.text == local, "\(result.stderr)")
        let calls = try String(contentsOfFile: log, encoding: .utf8)
        #expect(calls.contains("-c qemu:///system secret-get-value \(uuid)\n"), "\(calls)")
        // A secret that is not a key is refused in one line.
        try stub(printing: "not a key; mon_host=evil")
        let bad = try ImageMountBinary.run(["cat", "-d", "guest1", "--rbd-conf", conf, "/etc/hostname"], environment: env)
        #expect(bad.status != 0 && bad.stderr.contains("does not hold a Ceph key"), "\(bad.stderr)")
    }
}
