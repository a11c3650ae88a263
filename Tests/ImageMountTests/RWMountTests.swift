import Foundation
import Testing
import TestSupport

/// `--rw` mounts end to end: a scripted workload (cp -a, tar -x, renames, deletes, truncates,
/// chmod/chown, hard links, xattrs and ACLs, a 20 000-entry directory, filling the filesystem
/// to ENOSPC) runs on the mount and, for comparison, on a host directory; after unmounting,
/// `e2fsck -fn` must be clean and the kernel's ext4 (read-only loop mount) must show exactly
/// the host directory's tree.
@Suite(.serialized)
struct RWMountTests {
    /// Image kinds the workload runs on.
    ///
    /// Raw, qcow2, a qcow2 over a qcow2 base (the base must come out unchanged), and a
    /// LUKS-encrypted qcow2 (every data write encrypted under its host offset).
    static let formats = ["raw", "qcow2", "qcow2-backing", "qcow2-luks"]

    struct TestImage {
        let path: String
        /// The raw filesystem image the kernel oracle mounts (a conversion for qcow2).
        let raw: () throws -> String
        let backing: String?
        let backingSum: String?
        /// How qemu-img names the image, and imagemount's arguments beside -a (WritableFormats).
        var qemuName: String
        var arguments: [String] = []
    }

    /// A fresh 256 MiB ext4 (4 KiB blocks, 256-byte inodes) in `format`.
    static func image(_ format: String, in dir: TempDir) throws -> TestImage {
        let raw = dir.file("fs.img")
        try Shell.check("truncate -s 256M \(Shell.quote(raw)) && mke2fs -q -F -t ext4 -b 4096 -I 256 -N 65536 \(Shell.quote(raw))")
        switch format {
        case "qcow2":
            let q = dir.file("fs.qcow2")
            try Shell.check("qemu-img convert -O qcow2 \(Shell.quote(raw)) \(Shell.quote(q))")
            return TestImage(path: q, raw: { try Self.convert(Shell.quote(q), in: dir) }, backing: nil, backingSum: nil, qemuName: Shell.quote(q))
        case "qcow2-luks":
            let q = try WritableFormats.prepare(raw, format: format), name = WritableFormats.qemuName(q, format: format)
            return TestImage(path: q, raw: { try Self.convert(name, in: dir) }, backing: nil, backingSum: nil, qemuName: name,
                             arguments: WritableFormats.arguments(q, format: format))
        case "qcow2-backing":
            let base = dir.file("base.qcow2"), top = dir.file("top.qcow2")
            try Shell.check("qemu-img convert -O qcow2 \(Shell.quote(raw)) \(Shell.quote(base)) && " +
                            "qemu-img create -q -f qcow2 -F qcow2 -b \(Shell.quote(base)) \(Shell.quote(top))")
            return TestImage(path: top, raw: { try Self.convert(Shell.quote(top), in: dir) }, backing: base,
                             backingSum: try Shell.check("sha256sum < \(Shell.quote(base))"), qemuName: Shell.quote(top))
        default:
            return TestImage(path: raw, raw: { raw }, backing: nil, backingSum: nil, qemuName: Shell.quote(raw))
        }
    }

    /// `qemuName`: the image as qemu-img names it (TestImage.qemuName).
    static func convert(_ qemuName: String, in dir: TempDir) throws -> String {
        let out = dir.file("converted.img")
        try Shell.check("qemu-img convert \(qemuName) -O raw \(Shell.quote(out))")
        return out
    }

    /// After unmounting: e2fsck clean, qemu-img check clean (qcow2), backing file unchanged.
    static func finish(_ image: TestImage, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        if image.path.hasSuffix(".qcow2") {
            let check = try Shell.run("qemu-img check \(image.qemuName) 2>&1")
            #expect(check.status == 0, "qemu-img check: \(check.text)", sourceLocation: sourceLocation)
        }
        if let backing = image.backing {
            #expect(try Shell.check("sha256sum < \(Shell.quote(backing))") == image.backingSum, "backing file changed",
                    sourceLocation: sourceLocation)
        }
        let raw = try image.raw()
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(raw)) 2>&1")
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.text)", sourceLocation: sourceLocation)
        return raw
    }

    /// One line per entry: type+mode, owner, size, links, mtime (ns), symlink target; then a
    /// dump of every xattr. Directories' sizes and times are the filesystem's own and left out.
    static func describe(_ dir: String) throws -> (stat: [String], xattrs: String) {
        let lines = try Shell.check("cd \(Shell.quote(dir)) && find . ! -path './lost+found*' ! -path . -printf '%y %m %U %G %s %n %TY-%Tm-%Td+%TT %p -> %l\\n' | " +
                                    "awk '$1 == \"d\" { $5 = \"-\"; $7 = \"-\" } { print }' | LC_ALL=C sort")
        let xattrs = try Shell.check("cd \(Shell.quote(dir)) && find . ! -path './lost+found*' | LC_ALL=C sort | " +
                                     "xargs -d '\\n' getfattr -h -d -e hex -m - 2>/dev/null || true")
        return (lines.split(separator: "\n").map(String.init), xattrs)
    }

    /// The workload, as a bash script over `$T`, the source tree `$S` and the tarball `$TAR`.
    /// The same script runs on the mount and on a host directory.
    static let workload = """
        set -euo pipefail
        cd "$T"
        cp -a "$S" copy
        mkdir tarred && tar --xattrs --xattrs-include='*' -xpf "$TAR" -C tarred
        mv copy/a.txt copy/renamed.txt
        mv copy/dir/sub tarred/moved-sub
        printf 'replacement\\n' > newfile && mv -f newfile copy/random.bin
        rm -r tarred/dir/sub
        rm copy/dir/owned
        find copy/big -name 'f1*' -delete
        truncate -s 100 tarred/moved-sub/deeper/file
        truncate -s 3M copy/renamed.txt
        head -c 70000 /dev/zero | tr '\\0' 'z' >> copy/renamed.txt
        chmod 0705 copy/dir copy/renamed.txt
        chmod 2751 tarred
        chown 4321:8765 copy/renamed.txt
        chown -h 99:98 copy/dir/link
        ln copy/renamed.txt hardlink-one
        ln hardlink-one tarred/hardlink-two
        setfattr -n user.added -v "$(printf 'v%.0s' $(seq 1 100))" copy/renamed.txt
        setfattr -n trusted.secret -v 0x0001ff copy/renamed.txt
        setfattr -x user.test copy/renamed.txt
        setfattr -n system.posix_acl_access -v 0x02000000010006000000000002000400e8030000040004000000000010000400000000002000000000000000 copy/renamed.txt
        mkdir -p deep/a/b/c/d && echo bottom > deep/a/b/c/d/e
        ln -s ../../../copy deep/a/b/up
        mkfifo deep/fifo
        touch -h -d '1980-02-03 04:05:06.789' deep/a/b/up
        touch -d '2038-01-19 03:14:09.5' deep/a/b/c/d/e
        dd if=/dev/zero of=deep/sparse bs=1 count=1 seek=40000000 status=none
        # What the workload wrote gets fixed times, so the two runs can be compared.
        touch -h -d '2020-01-01 00:00:00.5' copy/random.bin copy/renamed.txt deep/fifo deep/sparse tarred/moved-sub/deeper/file
        """

    /// Builds the workload's inputs once: a copy of the mount fixture's tree and a tarball of part of it.
    static func inputs(_ f: MountFixture, _ dir: TempDir) throws -> [String: String] {
        let tar = dir.file("input.tar")
        try Shell.check("tar --xattrs --xattrs-include='*' -C \(Shell.quote(f.rootSource)) -cpf \(Shell.quote(tar)) dir a.txt sparse")
        return ["S": f.rootSource, "TAR": tar]
    }

    static func run(_ script: String, target: String, _ inputs: [String: String]) throws {
        var environment = inputs
        environment["T"] = target
        let result = try Shell.run("bash -c \(Shell.quote(script))", environment: environment)
        guard result.status == 0 else { throw Shell.Failure(command: "workload in \(target)", status: result.status, stderr: result.stderr) }
    }

    @Test(arguments: formats)
    func scriptedWorkloadMatchesTheHostAndLeavesACleanFilesystem(format: String) throws {
        let f = try MountFixture.get()
        let dir = try TempDir("imagemount-rw")
        let image = try Self.image(format, in: dir)
        let inputs = try Self.inputs(f, dir)
        let reference = dir.file("reference")
        try FileManager.default.createDirectory(atPath: reference, withIntermediateDirectories: false)
        try Self.run(Self.workload, target: reference, inputs)

        let m = try FuseMount(images: [image.path], arguments: ["--rw"] + image.arguments)
        do {
            defer { m.close() }
            try Self.run(Self.workload, target: m.path, inputs)
            // The mount itself agrees with the host before anything is written back.
            let ours = try Self.describe(m.path), host = try Self.describe(reference)
            #expect(ours.stat.count == host.stat.count)
            let differing = zip(ours.stat, host.stat).filter { $0 != $1 }.prefix(5)
            #expect(differing.isEmpty, "first differences (mount, host): \(Array(differing))")
            // diff cannot compare device nodes and FIFOs (it says so); their stat lines did above.
            let diff = try Shell.check("diff -r --no-dereference -x lost+found \(Shell.quote(reference)) \(Shell.quote(m.path)) 2>&1 | grep -v ' while file ' || true")
            #expect(diff.isEmpty, "\(diff.prefix(2000))")
            // statfs follows the changes; then fill the filesystem to ENOSPC and give some back.
            let before = try Shell.check("stat -f -c %f \(Shell.quote(m.path))")
            let fill = try Shell.run("dd if=/dev/zero of=\(Shell.quote(m.path + "/fill")) bs=1M 2>&1")
            #expect(fill.status != 0 && fill.text.contains("No space left on device"), "\(fill.text)")
            let after = try Shell.check("stat -f -c %f \(Shell.quote(m.path))")
            #expect((Int(after.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) <
                    (Int(before.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) / 20)
            let more = try Shell.run("bash -c \(Shell.quote("mkdir \(Shell.quote(m.path + "/one-more")) && echo x > \(Shell.quote(m.path + "/one-more/f"))"))")
            #expect(more.status == 0 || more.stderr.contains("No space left"), "\(more.stderr)")
            try Shell.check("rm -rf \(Shell.quote(m.path + "/one-more")) && truncate -s 1000000 \(Shell.quote(m.path + "/fill"))")
            try Shell.check("sync -f \(Shell.quote(m.path))")
        }
        #expect(!FuseMount.isMounted(m.path))

        let raw = try Self.finish(image)
        let k = try KernelMount(image: raw)
        defer { k.close() }
        #expect(try Shell.check("stat -c %s \(Shell.quote(k.path + "/fill"))") == "1000000\n")
        try Shell.check("rm -f \(Shell.quote(reference + "/fill"))")
        let kernel = try Self.describe(k.path), host = try Self.describe(reference)
        let kernelStat = kernel.stat.filter { !$0.hasSuffix("./fill -> ") }
        #expect(kernelStat.count == host.stat.count)
        let differing = zip(kernelStat, host.stat).filter { $0 != $1 }.prefix(5)
        #expect(differing.isEmpty, "first differences (kernel, host): \(Array(differing))")
        #expect(kernel.xattrs.replacingOccurrences(of: "# file: ./fill\n\n", with: "") == host.xattrs)
        let diff = try Shell.check("diff -r --no-dereference -x lost+found -x fill \(Shell.quote(reference)) \(Shell.quote(k.path)) 2>&1 | grep -v ' while file ' || true")
        #expect(diff.isEmpty, "\(diff.prefix(2000))")
    }

    @Test func errnosOfTheWriteOperations() throws {
        let dir = try TempDir("imagemount-rw")
        let image = try Self.image("raw", in: dir)
        let m = try FuseMount(images: [image.path], arguments: ["--rw"])
        do {
            defer { m.close() }
            let p = Shell.quote(m.path)
            func fails(_ command: String, _ message: String) throws {
                let r = try Shell.run("cd \(p) && \(command)")
                #expect(r.status != 0 && r.stderr.contains(message), "\(command): \(r.stderr)")
            }
            try Shell.check("cd \(p) && mkdir d && touch d/f f")
            try fails("mkdir d", "File exists")
            try fails("rmdir d", "Directory not empty")
            try fails("touch \(String(repeating: "n", count: 256))", "File name too long")
            try fails("ln d d2", "not allowed")
            try fails("mv d f", "cannot overwrite non-directory")
            try fails("cat nothing", "No such file")
            try fails("setfattr -n bogus.x -v 1 f", "Operation not supported")
            try fails("setfattr -x user.none f", "No such attribute")
            try fails("fallocate -z -l 4096 f", "Operation not supported")
            // renameat2 flags, through the C library.
            #expect(try Renameat2.call(m.path + "/f", m.path + "/d/f", flags: Renameat2.noReplace) == EEXIST)
            try Shell.check("cd \(p) && echo one > f && echo two > d/f")
            #expect(try Renameat2.call(m.path + "/f", m.path + "/d/f", flags: Renameat2.exchange) == 0)
            #expect(try Shell.check("cat \(p)/f \(p)/d/f") == "two\none\n")
            #expect(try Renameat2.call(m.path + "/d", m.path + "/f", flags: Renameat2.exchange) == 0)
            #expect(try Shell.check("cat \(p)/d; ls \(p)/f") == "two\nf\n")
            #expect(try Renameat2.call(m.path + "/nope", m.path + "/d", flags: Renameat2.exchange) == ENOENT)
            // fallocate and hole punching.
            try Shell.check("cd \(p) && fallocate -l 1M g && fallocate -n -o 1M -l 1M g && printf abc > h && fallocate -p -o 1 -l 1 h")
            #expect(try Shell.check("stat -c %s \(p)/g && od -An -c \(p)/h") == "1048576\n   a  \\0   c\n")
            // utimens with UTIME_OMIT (touch -a keeps mtime) and UTIME_NOW.
            try Shell.check("cd \(p) && touch -d '2001-02-03 04:05:06.7' h && touch -a h")
            #expect(try Shell.check("stat -c %y \(p)/h") == "2001-02-03 04:05:06.700000000 +0000\n")
        }
        _ = try Self.finish(image)
    }

    @Test func readOnlyMountAnswersEROFS() throws {
        let f = try MountFixture.get()
        let before = try Shell.check("sha256sum \(Shell.quote(f.rootImage))")
        let m = try FuseMount(images: [f.rootImage], arguments: ["--ro"])
        defer { m.close() }
        for command in ["touch x", "mkdir y", "rm a.txt", "chmod 600 a.txt", "setfattr -n user.a -v 1 a.txt", "mv a.txt b"] {
            let r = try Shell.run("cd \(Shell.quote(m.path)) && \(command)")
            #expect(r.status != 0 && r.stderr.contains("Read-only file system"), "\(command): \(r.stderr)")
        }
        m.close()
        #expect(try Shell.check("sha256sum \(Shell.quote(f.rootImage))") == before)
    }

    /// Encrypted qcow2 images opened for writing with a wrong key, and legacy AES ones with the
    /// right key, are refused with a clear error before anything is written.
    @Test func encryptedQcow2RefusalsWriteNothing() throws {
        let dir = try TempDir("imagemount-rw")
        let raw = dir.file("fs.img"), luks = dir.file("enc.qcow2"), aes = dir.file("aes.qcow2")
        try Shell.check(LUKSFixtures.retryFunction + "\ntruncate -s 32M \(Shell.quote(raw)) && mke2fs -q -F -t ext4 \(Shell.quote(raw)) && " +
                        "retry qemu-img convert --object secret,id=s0,data=pw -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10 " +
                        "\(Shell.quote(raw)) \(Shell.quote(luks)) && " +
                        "qemu-img convert --object secret,id=s0,data=pw -O qcow2 -o encrypt.format=aes,encrypt.key-secret=s0 " +
                        "\(Shell.quote(raw)) \(Shell.quote(aes))")
        for (image, key, words) in [(luks, "all:key:wrong", "matches no key slot"), (aes, "all:key:pw", "convert the image first")] {
            let before = try Shell.check("sha256sum \(Shell.quote(image))")
            let r = try ImageMountBinary.run(["copy-in", "--key", key, "-a", image, "/etc/hostname", "/"])
            #expect(r.status != 0 && r.stderr.contains(words) && r.stderr.contains(image), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(try Shell.check("sha256sum \(Shell.quote(image))") == before)
        }
    }
}

/// renameat2(2), looked up at run time (Swift's Glibc module does not declare it).
enum Renameat2 {
    static let noReplace: UInt32 = 1
    static let exchange: UInt32 = 2
    typealias Function = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

    /// Returns 0 or the errno.
    static func call(_ from: String, _ to: String, flags: UInt32) throws -> Int32 {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else {
            throw Shell.Failure(command: "dlsym renameat2", status: -1, stderr: "not found")
        }
        let function = unsafeBitCast(symbol, to: Function.self)
        let rc = function(AT_FDCWD, from, AT_FDCWD, to, flags)
        return rc == 0 ? 0 : errno
    }
}
