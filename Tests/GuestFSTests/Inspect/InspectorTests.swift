import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing
import TestSupport

@Suite struct InspectorTests {
    @Test func fstabParsingAndFiltering() {
        let entries = Fstab.parse("""
            # comment
            UUID=abc /      ext4 defaults 0 1
              LABEL=my\\040data  /srv/my\\040data xfs defaults 0 2
            /dev/sda2 none swap sw 0 0
            proc /proc proc defaults 0 0
            tmpfs /tmp tmpfs defaults 0 0
            /dev/sr0 /media/cdrom udf,iso9660 noauto 0 0
            server:/export /mnt/nfs nfs defaults 0 0
            /dev/vdb1 /var ext4
            """)
        #expect(entries.count == 8)
        #expect(entries[1] == FstabEntry(spec: "LABEL=my data", mountpoint: "/srv/my data", type: "xfs", options: "defaults"))
        #expect(entries.filter(Fstab.isMountable).map(\.mountpoint) == ["/", "/srv/my data", "/var"])
    }

    @Test func elfArchitectures() throws {
        let host = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/bin/ls")).prefix(64))
        #expect(ElfHeader.architecture(host) == "x86_64")
        var header = [UInt8](repeating: 0, count: 64)
        header[0...3] = [0x7F, 0x45, 0x4C, 0x46]
        header[4] = 2; header[5] = 1; header[18] = 183
        #expect(ElfHeader.architecture(header) == "aarch64")
        header[4] = 1; header[18] = 3
        #expect(ElfHeader.architecture(header) == "i386")
        header[4] = 2; header[5] = 2; header[18] = 0; header[19] = 21
        #expect(ElfHeader.architecture(header) == "ppc64")
        #expect(ElfHeader.architecture(Array("#!/bin/sh\n".utf8)) == nil)
    }

    @Test func osReleaseNames() {
        let fields = OSRelease.parse("ID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME='Ubuntu 22.04.3 LTS'\n# x=y\n")
        #expect(fields["ID"] == "ubuntu" && fields["PRETTY_NAME"] == "Ubuntu 22.04.3 LTS")
        #expect(OSRelease.version("22.04") == (22, 4))
        #expect(OSRelease.version("9") == (9, 0))
        #expect(OSRelease.osinfo(distro: "ubuntu", major: 22, minor: 4) == "ubuntu22.04")
        #expect(OSRelease.osinfo(distro: "rhel", major: 9, minor: 3) == "rhel9.3")
        #expect(OSRelease.packaging(distro: "centos", major: 7) == ("rpm", "yum"))
        #expect(OSRelease.packaging(distro: "debian", major: 12) == ("deb", "apt"))
        #expect(OSRelease.distro(forID: "alpine") == "alpinelinux")
    }

    @Test func gptGuestWithUUIDAndLabelMounts() throws {
        let g = try GuestFixtures.gptWithBootAndData()
        let guest = try Guest(drives: [DriveSpec(path: g.image)])
        let systems = Inspector.inspect(guest)
        try #require(systems.count == 1)
        let os = systems[0]
        #expect(os.root == "/dev/sda1")
        #expect(os.distro == "fedora" && os.majorVersion == 39 && os.minorVersion == 0)
        #expect(os.productName == "Fedora Linux 39 (Server Edition)")
        #expect(os.hostname == "gpt-guest")
        #expect(os.architecture == "x86_64")
        #expect(os.packageFormat == "rpm" && os.packageManagement == "dnf")
        #expect(os.mountpoints.map(\.mountpoint) == ["/", "/boot", "/data"])
        #expect(os.mountpoints.map(\.device) == ["/dev/sda1", "/dev/sda2", "/dev/sda3"])
        let tree = try MountTree(entries: Inspector.mountEntries(for: os, in: guest), writable: false)
        let kernel = try tree.resolve("/boot/vmlinuz")
        #expect(try tree.inode(kernel).size == 7)
    }

    @Test func mbrGuestWithLogicalRootAndUsrMerge() throws {
        let g = try GuestFixtures.mbrWithLogicalRoot()
        let guest = try Guest(drives: [DriveSpec(path: g.image)])
        let systems = Inspector.inspect(guest)
        try #require(systems.count == 1)
        #expect(systems[0].root == "/dev/sda5")
        #expect(systems[0].distro == "debian" && systems[0].majorVersion == 12)
        #expect(systems[0].packageManagement == "apt")
        #expect(systems[0].architecture == "x86_64", "found through the /bin -> usr/bin symlink")
        #expect(systems[0].mountpoints.map(\.mountpoint) == ["/", "/boot"])
        #expect(systems[0].warnings.isEmpty, "\(systems[0].warnings)")
    }

    @Test func legacyReleaseFiles() throws {
        let dir = try TempDir()
        let root = try GuestFixtures.rootTree(dir.file("root"), hostname: "old", osRelease: "", fstab: "/dev/sda / ext4 defaults 0 1\n")
        try Shell.check("rm \(Shell.quote(root))/etc/os-release && echo 'CentOS Linux release 7.9.2009 (Core)' > \(Shell.quote(root))/etc/redhat-release " +
                        "&& rm \(Shell.quote(root))/etc/hostname && printf 'NETWORKING=yes\\nHOSTNAME=legacy.example.com\\n' > \(Shell.quote(root))/etc/sysconfig-network")
        try Shell.check("mkdir -p \(Shell.quote(root))/etc/sysconfig && mv \(Shell.quote(root))/etc/sysconfig-network \(Shell.quote(root))/etc/sysconfig/network")
        let image = dir.file("legacy.img")
        try Shell.check("truncate -s 40M \(Shell.quote(image)) && mke2fs -F -q -t ext4 -d \(Shell.quote(root)) \(Shell.quote(image))")
        let systems = Inspector.inspect(try Guest(drives: [DriveSpec(path: image)]))
        try #require(systems.count == 1)
        #expect(systems[0].distro == "centos" && systems[0].majorVersion == 7 && systems[0].minorVersion == 9)
        #expect(systems[0].hostname == "legacy.example.com")
        #expect(systems[0].packageManagement == "yum")
    }

    @Test func filesystemsWithoutAnOSAreNotRoots() throws {
        // The sample tree has /etc but no /bin: not a root, as libguestfs decides.
        let image = try Fixtures.image("ext4", type: "ext4")
        #expect(Inspector.inspect(try Guest(drives: [DriveSpec(path: image)])).isEmpty)
    }
}
