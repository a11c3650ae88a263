import Foundation
import Testing
import TestSupport

/// `imagemount inspect`, `-i`, and automatic inspection in the helpers.
@Suite struct InspectCommandTests {
    @Test func xmlAndJsonReportTheGuest() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        let xml = try ImageMountBinary.run(["inspect", "-a", g.image])
        #expect(xml.status == 0, "\(xml.stderr)")
        for line in ["<root>/dev/sda1</root>", "<distro>fedora</distro>", "<hostname>gpt-guest</hostname>",
                     "<arch>x86_64</arch>", "<major_version>39</major_version>",
                     "<mountpoint dev=\"/dev/sda2\">/boot</mountpoint>", "<uuid>\(g.bootUUID)</uuid>", "<label>DATA</label>"] {
            #expect(xml.text.contains(line), "\(line) missing")
        }
        // xmllint-free well-formedness check: python's parser.
        let parsed = try Shell.run("python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())'",
                                   stdin: xml.stdout)
        #expect(parsed.status == 0, "\(parsed.stderr)")
        let json = try ImageMountBinary.run(["inspect", "--json", "-a", g.image])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        let os = (object?["operatingsystems"] as? [[String: Any]])?.first
        #expect(os?["hostname"] as? String == "gpt-guest")
        #expect((os?["mountpoints"] as? [[String: Any]])?.count == 3)
    }

    @Test func catInspectsWithoutMountOptions() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        for args in [["cat", "-a", g.image], ["cat", "-i", "-a", g.image]] {
            let result = try ImageMountBinary.run(args + ["/etc/hostname", "/boot/vmlinuz", "/data/payload"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.text == "gpt-guest\nkernel\ndata partition\n")
        }
        let mbr = try GuestFixtures.mbrWithLogicalRoot()
        // /bin is a symlink to usr/bin, so /bin/.. is /usr (as POSIX resolves it).
        let result = try ImageMountBinary.run(["cat", "-a", mbr.image, "/etc/hostname", "/boot/grub.cfg", "/bin/../../etc/hostname"])
        #expect(result.text == "mbr-guest\nmenuentry\nmbr-guest\n", "\(result.stderr)")
    }

    @Test func twoRootsNeedRoot() throws {
        let images = try GuestFixtures.twoRoots()
        let drives = images.flatMap { ["-a", $0] }
        let ambiguous = try ImageMountBinary.run(["cat"] + drives + ["/etc/hostname"])
        #expect(ambiguous.status == 1)
        #expect(ambiguous.stderr.contains("/dev/sda") && ambiguous.stderr.contains("/dev/sdb") && ambiguous.stderr.contains("--root"),
                "\(ambiguous.stderr)")
        let second = try ImageMountBinary.run(["cat", "-i", "--root", "/dev/sdb"] + drives + ["/etc/hostname"])
        #expect(second.status == 0 && second.text == "second-os\n", "\(second.stderr)")
        let inspect = try ImageMountBinary.run(["inspect"] + drives)
        #expect(inspect.text.components(separatedBy: "<operatingsystem>").count == 3)
    }

    @Test func inspectorWithoutAnOSFailsClearly() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let result = try ImageMountBinary.run(["cat", "-i", "-a", image, "/etc/hostname"])
        #expect(result.status == 1 && result.stderr.contains("no operating system"), "\(result.stderr)")
        // Without -i a lone filesystem is still used.
        #expect(try ImageMountBinary.run(["cat", "-a", image, "/etc/hostname"]).status == 0)
    }
}

/// Inspection on the CentOS layout: /boot on sda1, root on the LVM volume centos/root.
@Suite struct InspectLVMTests {
    @Test func centosRootOnLVM() throws {
        let c = try LVMFixtures.centos()
        let drives = c.disks.flatMap { ["-a", $0] }
        let xml = try ImageMountBinary.run(["inspect"] + drives)
        #expect(xml.status == 0, "\(xml.stderr)")
        for line in ["<root>/dev/centos/root</root>", "<distro>centos</distro>", "<major_version>7</major_version>",
                     "<hostname>centos-root</hostname>", "<package_management>yum</package_management>",
                     "<mountpoint dev=\"/dev/centos/root\">/</mountpoint>", "<mountpoint dev=\"/dev/sda1\">/boot</mountpoint>"] {
            #expect(xml.text.contains(line), "\(line) missing from\n\(xml.text)")
        }
        let cat = try ImageMountBinary.run(["cat", "-i"] + drives + ["/etc/hostname", "/boot/etc/hostname"])
        #expect(cat.text == "centos-root\ncentos-boot\n", "\(cat.stderr)")
        #expect(!cat.stderr.contains("centos-swap"), "swap entries are skipped silently, as libguestfs does: \(cat.stderr)")
    }

    @Test func mountWithInspectionShowsTheGuestTree() throws {
        let c = try LVMFixtures.centos()
        let m = try FuseMount(images: c.disks, arguments: ["-i"])
        defer { m.close() }
        #expect(try Shell.check("cat \(Shell.quote(m.path))/etc/hostname \(Shell.quote(m.path))/boot/etc/hostname") == "centos-root\ncentos-boot\n")
        #expect(try Shell.check("cat \(Shell.quote(m.path))/etc/os-release").contains("CentOS Linux 7"))
    }
}
