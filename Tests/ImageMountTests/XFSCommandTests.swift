import Foundation
import Testing
import TestSupport

/// XFS through the commands and the mount: a whole-disk XFS filled on a kernel loop mount from
/// a source tree, read back by cat, ls, copy-out, df, filesystems and the FUSE mount and
/// compared with the source and the kernel's statfs; writable opens refused in one line before
/// anything is written; a CentOS 7 layout (MBR, XFS /boot, LVM VG centos with XFS root and
/// swap) mounted with -i and inspected.
@Suite(.serialized) struct XFSCommandTests {
    static let readOnlyLine = "XFS is read-only in imagemount for now: mount without --rw"

    final class Fixture: @unchecked Sendable {
        let dir: TempDir
        var source: String { dir.file("src") }
        var image: String { dir.file("xfs.img") }
        /// `stat -f` of the kernel's read-only mount: block size, blocks, free, available, files, free files.
        var statfs: [UInt64] = []

        init() throws {
            dir = try TempDir("imagemount-xfs")
            let script = """
                set -eu
                cd \(Shell.quote(dir.path))
                mkdir -p src/dir/sub src/empty mnt
                echo hello > src/a.txt && chown 12:34 src/a.txt && chmod 640 src/a.txt
                ln -s a.txt src/link && ln -s /etc/absolute src/dir/abs
                ln -s "$(head -c 900 /dev/zero | tr '\\0' x)" src/dir/long-link
                head -c 3000000 /dev/urandom > src/dir/sub/random.bin
                truncate -s 5M src/dir/sparse.bin && printf 'tail' >> src/dir/sparse.bin
                for i in $(seq 1 300); do echo "file $i" > src/dir/sub/f$i; done
                printf 'name with spaces\\n' > 'src/dir/A Long Mixed-Case Name.txt'
                mkfifo src/fifo && mknod src/null c 1 3
                truncate -s 400M xfs.img && mkfs.xfs -q -f -L XFSDATA xfs.img
                mount -o loop xfs.img mnt && cp -a src/. mnt/ && umount mnt
                """
            try Shell.check("bash -c \(Shell.quote(script))")
            let m = Shell.quote(dir.file("mnt"))
            try Shell.check("mount -o loop,ro \(Shell.quote(image)) \(m)")
            defer { _ = try? Shell.run("umount \(m)") }
            statfs = try Shell.check("stat -f -c '%S %b %f %a %c %d' \(m)").split(separator: " ")
                .compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    static let fixture = Result { try Fixture() }

    static func sha256(_ path: String) throws -> String {
        try Shell.check("sha256sum \(Shell.quote(path))").split(separator: " ").first.map(String.init) ?? ""
    }

    @Test func catLsAndCopyOut() throws {
        let f = try Self.fixture.get()
        #expect(try ImageMountBinary.check(["cat", "-a", f.image, "/a.txt", "/dir/sub/f300"]) == "hello\nfile 300\n")
        let ls = try ImageMountBinary.check(["ls", "-a", f.image, "/dir"])
        #expect(ls.split(separator: "\n").sorted() == ["A Long Mixed-Case Name.txt", "abs", "long-link", "sparse.bin", "sub"], "\(ls)")
        let sub = try ImageMountBinary.check(["ls", "-a", f.image, "/dir/sub"])
        #expect(sub.split(separator: "\n").count == 301)
        let out = try TempDir("imagemount-xfs-out")
        try ImageMountBinary.check(["copy-out", "-a", f.image, "/dir", "/a.txt", out.path])
        let diff = try Shell.run("diff -r --no-dereference \(Shell.quote(f.source + "/dir")) \(Shell.quote(out.file("dir")))")
        #expect(diff.status == 0, "\(diff.text)")
        #expect(try Shell.check("cat \(Shell.quote(out.file("a.txt")))") == "hello\n")
        // copy-out keeps the hole.
        let blocks = try Shell.check("stat -c %b \(Shell.quote(out.file("dir/sparse.bin")))").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect((Int(blocks) ?? 99999) < 64, "sparse copy holds \(blocks) blocks")
        let missing = try ImageMountBinary.run(["cat", "-a", f.image, "/no/such"])
        #expect(missing.status != 0 && missing.stdout.isEmpty)
    }

    @Test func mountShowsTheSourceTree() throws {
        let f = try Self.fixture.get()
        let m = try FuseMount(images: [f.image])
        defer { m.close() }
        #expect(m.output.status == 0, "\(m.output.stderr)")
        let diff = try Shell.run("diff -r --no-dereference -x fifo -x null \(Shell.quote(f.source)) \(Shell.quote(m.path))")
        #expect(diff.status == 0, "\(diff.text)")
        let listing = "find . -printf '%y %m %U:%G %s %n %T@ %p %l\\n' | grep -v '^d' | sort"
        #expect(try Shell.check("cd \(Shell.quote(m.path)) && \(listing)") == Shell.check("cd \(Shell.quote(f.source)) && \(listing)"))
        let touch = try Shell.run("touch \(Shell.quote(m.path))/new 2>&1")
        #expect(touch.status != 0 && touch.text.contains("Read-only file system"), "\(touch.text)")
        let statfs = try Shell.check("stat -f -c '%S %b %f %a %c %d' \(Shell.quote(m.path))").split(separator: " ")
            .compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(statfs == f.statfs)
    }

    @Test func dfAndFilesystemsAsTheKernelAndBlkid() throws {
        let f = try Self.fixture.get()
        let k = f.statfs
        try #require(k.count == 6)
        let lines = try ImageMountBinary.check(["df", "-a", f.image]).split(separator: "\n").map(String.init)
        try #require(lines.count == 2)
        let kib = k[0] / 1024
        let columns = lines[1].split(separator: " ").map(String.init)
        #expect(columns.dropFirst().prefix(3) == [String(k[1] * kib), String((k[1] - k[2]) * kib), String(k[3] * kib)], "\(lines[1])")
        let inodes = try ImageMountBinary.check(["df", "-a", f.image, "-i"]).split(separator: "\n").map(String.init)
        #expect(inodes.count == 2 && inodes[1].split(separator: " ").dropFirst().prefix(3).map(String.init)
                == [String(k[4]), String(k[4] - k[5]), String(k[5])], "\(inodes)")
        let uuid = try Shell.check("blkid -o value -s UUID \(Shell.quote(f.image))").trimmingCharacters(in: .whitespacesAndNewlines)
        let filesystems = try ImageMountBinary.check(["filesystems", "-a", f.image, "-l", "--uuid"])
        #expect(filesystems.contains("xfs") && filesystems.contains("XFSDATA") && filesystems.contains(uuid), "\(filesystems)")
    }

    @Test func writableOpensFailBeforeAnythingIsWritten() throws {
        let f = try Self.fixture.get()
        let before = try Self.sha256(f.image)
        let edit = try ImageMountBinary.run(["edit", "-a", f.image, "/a.txt", "-e", "s/hello/bye/"])
        #expect(edit.status != 0)
        #expect(edit.stderr.contains(Self.readOnlyLine), "\(edit.stderr)")
        let scratch = try TempDir("imagemount-xfs-in")
        try Shell.check("echo new > \(Shell.quote(scratch.file("new.txt")))")
        let copyIn = try ImageMountBinary.run(["copy-in", "-a", f.image, scratch.file("new.txt"), "/"])
        #expect(copyIn.status != 0)
        #expect(copyIn.stderr.contains(Self.readOnlyLine), "\(copyIn.stderr)")
        let mnt = try TempDir("imagemount-xfs-rw")
        let rw = try ImageMountBinary.run(["-a", f.image, "--rw", mnt.path])
        defer { _ = try? Shell.run("fusermount3 -u -z \(Shell.quote(mnt.path)) 2>/dev/null") }
        #expect(rw.status != 0)
        #expect(rw.stderr == "imagemount: \(f.image): XFS: \(Self.readOnlyLine)\n", "\(rw.stderr)")
        #expect(try Self.sha256(f.image) == before)
    }
}

/// A CentOS 7 disk as its installer lays it out: MBR; /dev/sda1 XFS /boot; /dev/sda2 an LVM
/// PV of VG `centos` holding `root` (XFS) and `swap`; fstab naming /dev/mapper/centos-root,
/// the /boot UUID and the swap LV. Both filesystems are filled on kernel loop mounts.
@Suite(.serialized) struct XFSCentOSLayoutTests {
    static let hostname = "centos7-guest"
    static let release = "CentOS Linux release 7.9.2009 (Core)"

    final class Fixture: @unchecked Sendable {
        let builder: LVMImageBuilder
        var disk: String { builder.dir.file("centos7.img") }
        var bootUUID = ""

        init() throws {
            builder = try LVMImageBuilder()
            let d = builder.dir.path
            let q = Shell.quote(d)
            // Partitions in sectors: sda1 320 MiB from 1 MiB, sda2 the rest of 800 MiB.
            let sda1 = (start: UInt64(2048), size: UInt64(655_360)), sda2Start = UInt64(657_408)
            try Shell.check("cd \(q) && truncate -s 800M centos7.img && truncate -s 320M boot.img && truncate -s 400M root.img && mkdir -p mnt")
            try Shell.check("sfdisk -q --no-reread --no-tell-kernel \(Shell.quote(disk))",
                            stdin: Data("label: dos\nlabel-id: 0x000c3e1a\nstart=\(sda1.start), size=\(sda1.size), type=83, bootable\nstart=\(sda2Start), type=8e\n".utf8))
            try Shell.check("""
                cd \(q) && mkfs.xfs -q -f boot.img && mount -o loop boot.img mnt && mkdir -p mnt/grub2 \
                && echo 'menuentry CentOS' > mnt/grub2/grub.cfg && echo kernel > mnt/vmlinuz-3.10.0-1160.el7.x86_64 \
                && umount mnt
                """)
            bootUUID = try Shell.check("blkid -o value -s UUID \(Shell.quote(d + "/boot.img"))").trimmingCharacters(in: .whitespacesAndNewlines)
            let osRelease = """
                NAME="CentOS Linux"
                VERSION="7 (Core)"
                ID="centos"
                ID_LIKE="rhel fedora"
                VERSION_ID="7"
                PRETTY_NAME="CentOS Linux 7 (Core)"

                """
            let fstab = """
                /dev/mapper/centos-root /                       xfs     defaults        0 0
                UUID=\(bootUUID) /boot                   xfs     defaults        0 0
                /dev/mapper/centos-swap swap                    swap    defaults        0 0

                """
            let tree = try GuestFixtures.rootTree(d + "/roottree", hostname: XFSCentOSLayoutTests.hostname, osRelease: osRelease, fstab: fstab)
            try Shell.check("""
                cd \(q) && echo '\(XFSCentOSLayoutTests.release)' > roottree/etc/redhat-release \
                && cp roottree/etc/redhat-release roottree/etc/centos-release \
                && mkfs.xfs -q -f root.img && mount -o loop root.img mnt && cp -a \(Shell.quote(tree))/. mnt/ && umount mnt \
                && dd if=boot.img of=centos7.img bs=1M seek=1 conv=notrunc,sparse status=none
                """)
            let pv = LVMImageBuilder.PV(image: disk, offset: sda2Start * 512, size: 800 * 1024 * 1024 - sda2Start * 512)
            let root = LVMTestVolume(name: "root", uuid: "R00tXF-aaaa-bbbb-cccc-dddd-eeee-ffff01", segments: [.init(extents: 100, stripes: [(0, 0)])])
            let swap = LVMTestVolume(name: "swap", uuid: "SwapXF-aaaa-bbbb-cccc-dddd-eeee-ffff02", segments: [.init(extents: 8, stripes: [(0, 100)])])
            let backup = try builder.withLoops([pv]) { loops in
                let backup = try builder.createVG("centos", extentSize: "4M", loops: loops)
                try builder.restore("centos", backup: backup, logicalVolumes: root.metadata + swap.metadata, loops: loops)
                return backup
            }
            guard let peSectors = LVMImageBuilder.pvField(backup, pv: "pv0", "pe_start") else {
                throw Shell.Failure(command: "vgcfgbackup", status: 1, stderr: "no pe_start")
            }
            let lvStart = sda2Start * 512 + peSectors * 512
            try Shell.check("""
                cd \(q) && dd if=root.img of=centos7.img bs=4M oflag=seek_bytes seek=\(lvStart) conv=notrunc,sparse status=none \
                && truncate -s 32M swap.img && mkswap -q swap.img \
                && dd if=swap.img of=centos7.img bs=4M oflag=seek_bytes seek=\(lvStart + 100 * 4 * 1024 * 1024) conv=notrunc,sparse status=none \
                && rm -f boot.img root.img swap.img
                """)
        }
    }

    static let fixture = Result { try Fixture() }

    @Test func inspectShowsCentOS() throws {
        let f = try Self.fixture.get()
        let xml = try ImageMountBinary.run(["inspect", "-a", f.disk])
        #expect(xml.status == 0, "\(xml.stderr)")
        for line in ["<distro>centos</distro>", "<hostname>\(Self.hostname)</hostname>", "<major_version>7</major_version>",
                     "<mountpoint dev=\"/dev/sda1\">/boot</mountpoint>", "<uuid>\(f.bootUUID)</uuid>"] {
            #expect(xml.text.contains(line), "\(line) missing from \(xml.text)")
        }
        #expect(xml.text.contains("<root>/dev/centos/root</root>") || xml.text.contains("<root>/dev/mapper/centos-root</root>"), "\(xml.text)")
    }

    @Test func catAndMountWithInspection() throws {
        let f = try Self.fixture.get()
        let cat = try ImageMountBinary.run(["cat", "-a", f.disk, "/etc/hostname", "/etc/redhat-release", "/boot/grub2/grub.cfg"])
        #expect(cat.status == 0, "\(cat.stderr)")
        #expect(cat.text == "\(Self.hostname)\n\(Self.release)\nmenuentry CentOS\n")
        let byName = try ImageMountBinary.run(["cat", "-a", f.disk, "-m", "/dev/centos/root", "/etc/centos-release"])
        #expect(byName.status == 0 && byName.text == "\(Self.release)\n", "\(byName.stderr)")
        let m = try FuseMount(images: [f.disk], arguments: ["-i", "--ro"])
        defer { m.close() }
        #expect(m.output.status == 0, "\(m.output.stderr)")
        #expect(try Shell.check("cat \(Shell.quote(m.path))/etc/hostname") == "\(Self.hostname)\n")
        #expect(try Shell.check("ls \(Shell.quote(m.path))/boot") == "grub2\nvmlinuz-3.10.0-1160.el7.x86_64\n")
        let filesystems = try ImageMountBinary.check(["filesystems", "-a", f.disk, "-l"])
        for name in ["/dev/sda1", "/dev/centos/root", "xfs"] {
            #expect(filesystems.contains(name), "\(name) missing: \(filesystems)")
        }
    }

    /// The job of the issue's background: `virt-df -d vm1` shows /dev/sda1 and /dev/centos/root,
    /// then `guestmount -d vm1 -m /dev/centos/root` to look inside (read-only here).
    @Test func libvirtDomainDfAndExplicitMount() throws {
        let f = try Self.fixture.get()
        let dir = try TempDir()
        let xml = """
            <domain type='kvm'><name>vm1</name><devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
            <source file='\(f.disk)'/><target dev='vda' bus='virtio'/></disk></devices></domain>
            """
        try Data(xml.utf8).write(to: URL(fileURLWithPath: dir.file("vm1.xml")))
        let env = ["IMAGEMOUNT_LIBVIRT_DIR": dir.path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let df = try ImageMountBinary.run(["df", "-d", "vm1", "-h"], environment: env)
        #expect(df.status == 0, "\(df.stderr)")
        let rows = df.text.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(rows.contains("vm1:/dev/sda1") && rows.contains("vm1:/dev/centos/root"), "\(df.text)")
        let cat = try ImageMountBinary.run(["cat", "-d", "vm1", "-m", "/dev/centos/root", "/etc/hostname"], environment: env)
        #expect(cat.status == 0 && cat.text == "\(Self.hostname)\n", "\(cat.stderr)")
        let rw = try ImageMountBinary.run(["copy-in", "-d", "vm1", "-m", "/dev/centos/root", "/etc/hostname", "/tmp"], environment: env)
        #expect(rw.status != 0 && rw.stderr.contains(XFSCommandTests.readOnlyLine), "\(rw.stderr)")
    }
}
