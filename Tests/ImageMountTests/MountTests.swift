import Foundation
import Testing
import TestSupport

/// End-to-end: real FUSE mounts made by the built binary, checked against the source trees
/// and against the kernel's own ext4 over a loop device.
@Suite(.serialized)
struct MountTests {
    /// `stat` of every entry under `dir`, one sorted line each (type+mode, owner, size,
    /// blocks, links, inode, device numbers, the three times to the nanosecond, symlink target).
    static func statLines(_ dir: String, filter: String = "") throws -> [String] {
        try Shell.check("cd \(Shell.quote(dir)) && find . \(filter) -exec stat -c '%n|%f|%u|%g|%s|%b|%h|%i|%t:%T|%x|%y|%z|%N' {} + | LC_ALL=C sort")
            .split(separator: "\n").map(String.init)
    }

    @Test(arguments: ["raw", "qcow2"])
    func treeMatchesSource(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m.close() }
        try Shell.check("diff -r --no-dereference -x special -x lost+found \(Shell.quote(f.rootSource)) \(Shell.quote(m.path))")
        // Owners, modes, sizes, link counts, mtimes to the nanosecond and symlink targets of
        // everything but directories (whose sizes are the filesystem's own). mke2fs 1.47.0 -d
        // keeps whole seconds only, so times are compared to the second here; the fixture sets
        // nanoseconds with debugfs, checked below and by `statMatchesKernel` to the nanosecond.
        func pick(_ lines: [String], _ fields: [Int]) -> [String] {
            lines.map { $0.split(separator: "|", omittingEmptySubsequences: false).enumerated()
                .filter { fields.contains($0.offset) }
                .map { $0.offset == 10 ? $0.element.split(separator: ".").first ?? $0.element : $0.element }
                .joined(separator: "|") }
        }
        let single = "! -type d -links 1 ! -path './lost+found*' ! -name 'sp ace'"
        let ours = pick(try Self.statLines(m.path, filter: single), [0, 1, 2, 3, 4, 6, 8, 10, 12])
        let source = pick(try Self.statLines(f.rootSource, filter: single), [0, 1, 2, 3, 4, 6, 8, 10, 12])
        #expect(ours.count == source.count)
        let differing = zip(ours, source).filter { $0 != $1 }.prefix(5)
        #expect(differing.isEmpty, "first differences (ours, source): \(Array(differing))")
        let linked = "! -type d -links +1"
        #expect(pick(try Self.statLines(m.path, filter: linked), [0, 1, 2, 3, 4, 6]) ==
                pick(try Self.statLines(f.rootSource, filter: linked), [0, 1, 2, 3, 4, 6]))
        #expect(try Shell.check("stat -c %y \(Shell.quote(m.path + "/dir/sp ace"))").hasPrefix("2021-03-04 05:06:07.123456789"))
        #expect(try Shell.check("stat -c %y \(Shell.quote(m.path + "/dir/sub"))").hasPrefix("1999-12-31 23:59:59.999999999"))
    }

    @Test(arguments: ["raw", "qcow2"])
    func statMatchesKernel(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m.close() }
        let k = try KernelMount(image: f.rootImage)
        defer { k.close() }
        let ours = try Self.statLines(m.path)
        let kernel = try Self.statLines(k.path)
        #expect(ours.count == kernel.count)
        let differing = zip(ours, kernel).filter { $0 != $1 }.prefix(5)
        #expect(differing.isEmpty, "first differences (ours, kernel): \(Array(differing))")
        // Hard links are one inode; device numbers and fifos come through.
        let hard = try Shell.check("stat -c %i \(Shell.quote(m.path))/a.txt \(Shell.quote(m.path))/dir/hard").split(separator: "\n")
        #expect(hard.count == 2 && hard[0] == hard[1])
        #expect(try Shell.check("stat -c '%F %t:%T' \(Shell.quote(m.path))/special/wide") == "character special file 12c:11170\n")
        #expect(try Shell.check("stat -c '%F' \(Shell.quote(m.path))/special/fifo") == "fifo\n")
        #expect(try Shell.check("readlink \(Shell.quote(m.path))/dir/link") == "../a.txt\n")
    }

    @Test(arguments: ["raw", "qcow2"])
    func statfsMatchesKernel(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m.close() }
        let k = try KernelMount(image: f.rootImage)
        defer { k.close() }
        let format = "stat -f -c '%S %b %f %a %c %d %l' "
        #expect(try Shell.check(format + Shell.quote(m.path)) == (try Shell.check(format + Shell.quote(k.path))))
    }

    @Test(arguments: ["raw", "qcow2"])
    func extendedAttributes(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m.close() }
        let k = try KernelMount(image: f.rootImage)
        defer { k.close() }
        // Sorted by path: getfattr -R follows readdir order, which differs between trees.
        let dump = "find . | LC_ALL=C sort | xargs -d '\\n' getfattr -h -d -e hex -m '^user\\.' 2>/dev/null"
        let ours = try Shell.check("cd \(Shell.quote(m.path)) && \(dump)")
        #expect(ours == (try Shell.check("cd \(Shell.quote(f.rootSource)) && \(dump)")))
        let all = "find . | LC_ALL=C sort | xargs -d '\\n' getfattr -h -d -e hex -m - 2>/dev/null"
        #expect(try Shell.check("cd \(Shell.quote(m.path)) && \(all)") == (try Shell.check("cd \(Shell.quote(k.path)) && \(all)")))
        #expect(ours.contains("user.test=0x76616c756531"))
        let missing = try Shell.run("getfattr -n user.nope \(Shell.quote(m.path))/a.txt")
        #expect(missing.status != 0 && missing.stderr.contains("No such attribute"))
    }

    @Test(arguments: ["raw", "qcow2"])
    func largeDirectory(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m.close() }
        let big = Shell.quote(m.path + "/big")
        #expect(try Shell.check("ls -f \(big) | wc -l") == "\(MountFixture.bigDirectoryCount + 2)\n")
        #expect(try Shell.check("ls \(big) | md5sum") == (try Shell.check("ls \(Shell.quote(f.rootSource + "/big")) | md5sum")))
        // Lookups by name, in a fresh mount so nothing is cached yet.
        let m2 = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m2.close() }
        let names = stride(from: 0, to: MountFixture.bigDirectoryCount, by: 97).map { String(format: "f%05d", $0) }
        let out = try Shell.check("cd \(Shell.quote(m2.path + "/big")) && stat -c %s \(names.joined(separator: " ")) | sort -u")
        #expect(out == "0\n")
        let missing = try Shell.run("stat \(Shell.quote(m2.path + "/big/f99999"))")
        #expect(missing.status != 0)
    }

    @Test(arguments: ["raw", "qcow2"])
    func sparseFile(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.rootImage, format: format)])
        defer { m.close() }
        let k = try KernelMount(image: f.rootImage)
        defer { k.close() }
        let du = "du -B1 "
        #expect(try Shell.check(du + Shell.quote(m.path + "/sparse")).split(separator: "\t").first ==
                (try Shell.check(du + Shell.quote(k.path + "/sparse"))).split(separator: "\t").first)
        #expect(try Shell.check("du -B1 --apparent-size \(Shell.quote(m.path + "/sparse"))").hasPrefix("52428800"))
        try Shell.check("cmp \(Shell.quote(m.path + "/sparse")) \(Shell.quote(f.rootSource + "/sparse"))")
        // SEEK_DATA/SEEK_HOLE keep the copy sparse.
        let copy = m.directory.file("copy")
        try Shell.check("cp --sparse=auto \(Shell.quote(m.path + "/sparse")) \(Shell.quote(copy))")
        let blocks = Int(try Shell.check("stat -c %b \(Shell.quote(copy))").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(blocks < 1000)
    }

    @Test func twoFilesystemTree() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage, f.bootImage], arguments: ["-m", "/dev/sda", "-m", "/dev/sdb:/boot"])
        defer { m.close() }
        try checkTwoFilesystems(f, m, bootImage: f.bootImage, bootOffset: 0)
    }

    @Test(arguments: ["raw", "qcow2"])
    func partitionedImage(format: String) throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [try f.image(f.partitionedImage, format: format)], arguments: ["-m", "/dev/sda2", "-m", "/dev/sda1:/boot"])
        defer { m.close() }
        try checkTwoFilesystems(f, m, bootImage: f.partitionedImage, bootOffset: 1 << 20)
        let k = try KernelMount(image: f.partitionedImage, offset: f.rootPartitionOffset)
        defer { k.close() }
        let ours = try Self.statLines(m.path, filter: "-path ./boot -prune -o -print")
        #expect(ours == (try Self.statLines(k.path, filter: "-path ./boot -prune -o -print")))
    }

    private func checkTwoFilesystems(_ f: MountFixture, _ m: FuseMount, bootImage: String, bootOffset: UInt64) throws {
        try Shell.check("diff -r --no-dereference -x lost+found \(Shell.quote(f.bootSource)) \(Shell.quote(m.path + "/boot"))")
        try Shell.check("diff -r --no-dereference -x special -x lost+found -x boot \(Shell.quote(f.rootSource)) \(Shell.quote(m.path))")
        // Inode numbers stay unique across the two filesystems of the one mount.
        #expect(try Shell.check("find \(Shell.quote(m.path)) ! -type d -links 1 -printf '%i\\n' | sort | uniq -d") == "")
        #expect(try Shell.check("cd \(Shell.quote(m.path + "/boot/grub")) && cd ../.. && ls -d a.txt") == "a.txt\n")
        let k = try KernelMount(image: bootImage, offset: bootOffset)
        defer { k.close() }
        let format = "stat -f -c '%S %b %f %a %c %d' "
        #expect(try Shell.check(format + Shell.quote(m.path + "/boot")) == (try Shell.check(format + Shell.quote(k.path))))
        #expect(try Shell.check(format + Shell.quote(m.path)) != (try Shell.check(format + Shell.quote(m.path + "/boot"))))
    }

    @Test func ownerOverride() throws {
        let f = try MountFixture.get()
        let m = try FuseMount(images: [f.rootImage], arguments: ["-o", "uid=4242,gid=4343", "-o", "allow_other"])
        defer { m.close() }
        #expect(try Shell.check("stat -c '%u %g' \(Shell.quote(m.path + "/dir/owned"))") == "4242 4343\n")
        let options = try Shell.check("grep \(Shell.quote(m.path)) /proc/mounts")
        #expect(options.contains("ro,") && options.contains("nosuid") && options.contains("nodev") && options.contains("allow_other"))
        #expect(options.contains("default_permissions"))
    }
}
