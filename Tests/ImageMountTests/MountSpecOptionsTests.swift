import Foundation
import Testing
import TestSupport

/// `-m DEVICE[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]` as guestmount reads it: `ro` per filesystem
/// (EROFS under it while the others stay writable, for the mount, copy-in and edit), the ext
/// options that change nothing, unknown options refused before anything is opened, and FSTYPE
/// checked against the probe. The disk is MountFixture's GPT disk: /dev/sda1 = ext2 boot,
/// /dev/sda2 = ext4 root (which has a /boot directory).
@Suite(.serialized) struct MountSpecOptionsTests {
    /// A private copy of the partitioned fixture (sparse, so the copy is quick).
    static func scratchDisk() throws -> (TempDir, String) {
        let f = try MountFixture.get()
        let dir = try TempDir("imagemount-mspec")
        let disk = dir.file("disk.img")
        try Shell.check("cp --sparse=always \(Shell.quote(f.partitionedImage)) \(Shell.quote(disk))")
        return (dir, disk)
    }

    /// sha256 of bytes [offset, offset+size) of `path`.
    static func digest(_ path: String, offset: UInt64, size: UInt64) throws -> String {
        try Shell.check("tail -c +\(offset + 1) \(Shell.quote(path)) | head -c \(size) | sha256sum")
    }

    static let bootOffset: UInt64 = 2048 * 512
    static let bootSize: UInt64 = 16 << 20

    @Test func readOnlyFilesystemUnderRW() throws {
        let (dir, disk) = try Self.scratchDisk()
        _ = dir
        let before = try Self.digest(disk, offset: Self.bootOffset, size: Self.bootSize)
        let m = try FuseMount(images: [disk], arguments: ["--rw", "-m", "/dev/sda2", "-m", "/dev/sda1:/boot:ro"])
        defer { m.close() }
        let boot = try Shell.run("echo x > \(Shell.quote(m.path + "/boot/new")) 2>&1")
        #expect(boot.status != 0 && boot.stderr.contains("Read-only file system"), "\(boot.stderr)")
        let mkdir = try Shell.run("mkdir \(Shell.quote(m.path + "/boot/d")) 2>&1")
        #expect(mkdir.status != 0 && mkdir.text.contains("Read-only file system"), "\(mkdir.text)")
        let append = try Shell.run("echo x >> \(Shell.quote(m.path + "/boot/vmlinuz")) 2>&1")
        #expect(append.status != 0 && append.stderr.contains("Read-only file system"), "\(append.stderr)")
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/boot/vmlinuz"))") == "kernel\n")
        // The root filesystem stays writable.
        try Shell.check("echo written > \(Shell.quote(m.path + "/rootfile"))")
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/rootfile"))") == "written\n")
        m.close()
        #expect(try Self.digest(disk, offset: Self.bootOffset, size: Self.bootSize) == before, "the ro filesystem was written")
        let out = try ImageMountBinary.check(["cat", "-a", disk, "-m", "/dev/sda2", "/rootfile"])
        #expect(out == "written\n")
    }

    @Test func rwOptionIsTheDefaultAndLastWins() throws {
        let (dir, disk) = try Self.scratchDisk()
        _ = dir
        let m = try FuseMount(images: [disk], arguments: ["--rw", "-m", "/dev/sda2", "-m", "/dev/sda1:/boot:ro,rw"])
        defer { m.close() }
        try Shell.check("echo x > \(Shell.quote(m.path + "/boot/new"))")
        m.close()
        #expect(try ImageMountBinary.check(["cat", "-a", disk, "-m", "/dev/sda1", "/new"]) == "x\n")
    }

    @Test func extOptionsThatChangeNothingAreAccepted() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.partitionedImage],
                              arguments: ["-m", "/dev/sda2:/:noatime,nodiratime,relatime,strictatime,defaults,errors=remount-ro,acl,user_xattr:ext4",
                                          "-m", "/dev/sda1:/boot:ro,errors=continue:ext2"])
        defer { m.close() }
        #expect(try Shell.check("cat \(Shell.quote(m.path + "/a.txt")) \(Shell.quote(m.path + "/boot/vmlinuz"))") == "hello\nkernel\n")
        let cat = try ImageMountBinary.run(["cat", "-a", f.partitionedImage, "-m", "/dev/sda2:/:noatime:ext4", "/a.txt"])
        #expect(cat.status == 0 && cat.text == "hello\n", "\(cat.stderr)")
    }

    @Test(arguments: ["bogus", "errors=sometimes", "ro,bogus=1"])
    func unknownOptionFailsBeforeAnythingIsOpened(option: String) throws {
        let dir = try TempDir()
        // The image does not exist: the -m error must come first, before any open.
        let r = try ImageMountBinary.run(["-a", "/nonexistent/disk.img", "-m", "/dev/sda1:/:" + option, dir.path])
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("imagemount: -m ") && lines[0].contains(option.split(separator: ",").last.map(String.init) ?? option), "\(r.stderr)")
        #expect(!r.stderr.contains("nonexistent"), "\(r.stderr)")
        #expect(lines.last == "Try ‘imagemount --help’ for more information.", "\(r.stderr)")
        #expect(!FuseMount.isMounted(dir.path))
        let cat = try ImageMountBinary.run(["cat", "-a", "/nonexistent/disk.img", "-m", "/dev/sda1:/:" + option, "/x"])
        #expect(cat.status == 1 && !cat.stderr.contains("nonexistent"), "\(cat.stderr)")
    }

    @Test func fstypeIsCheckedAgainstTheProbe() throws {
        let f = try MountFixture.get()
        let wrong = try ImageMountBinary.run(["cat", "-a", f.partitionedImage, "-m", "/dev/sda1:/::ext4", "/vmlinuz"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr == "imagemount: /dev/sda1: -m asked for ext4, but the volume holds ext2\n", "\(wrong.stderr)")
        let right = try ImageMountBinary.run(["cat", "-a", f.partitionedImage, "-m", "/dev/sda1:/::ext2", "/vmlinuz"])
        #expect(right.status == 0 && right.text == "kernel\n", "\(right.stderr)")
        let unknown = try ImageMountBinary.run(["cat", "-a", f.partitionedImage, "-m", "/dev/sda1:/::btrfs", "/vmlinuz"])
        #expect(unknown.status == 1 && unknown.stderr.contains("'btrfs'"), "\(unknown.stderr)")
        let dir = try TempDir()
        let mount = try ImageMountBinary.run(["-a", f.partitionedImage, "-m", "/dev/sda2:/:ro:ext3", dir.path])
        #expect(mount.status == 1 && mount.stderr.contains("asked for ext3, but the volume holds ext4"), "\(mount.stderr)")
        #expect(!FuseMount.isMounted(dir.path))
    }

    @Test func copyInAndEditHonourReadOnlyFilesystems() throws {
        let (dir, disk) = try Self.scratchDisk()
        let before = try Self.digest(disk, offset: Self.bootOffset, size: Self.bootSize)
        let host = dir.file("host.txt")
        try "from host\n".write(toFile: host, atomically: false, encoding: .utf8)
        let copy = try ImageMountBinary.run(["copy-in", "-a", disk, "-m", "/dev/sda2", "-m", "/dev/sda1:/boot:ro", host, "/boot"])
        #expect(copy.status == 1 && copy.stderr.contains("/boot: on /dev/sda1, mounted read-only"), "\(copy.stderr)")
        let edit = try ImageMountBinary.run(["edit", "-a", disk, "-m", "/dev/sda2", "-m", "/dev/sda1:/boot:ro", "-e", "s/kernel/other/", "/boot/vmlinuz"])
        #expect(edit.status == 1 && edit.stderr.contains("mounted read-only"), "\(edit.stderr)")
        #expect(try Self.digest(disk, offset: Self.bootOffset, size: Self.bootSize) == before)
        // The writable one next to it still takes the copy.
        try ImageMountBinary.check(["copy-in", "-a", disk, "-m", "/dev/sda2", "-m", "/dev/sda1:/boot:ro", host, "/"])
        #expect(try ImageMountBinary.check(["cat", "-a", disk, "-m", "/dev/sda2", "/host.txt"]) == "from host\n")
    }
}
