import Foundation
import Testing
import TestSupport

/// The write path against the kernel: one script of system calls and shell idioms
/// (Tests/Scripts/posix-conformance.py: open flags, overwrites shorter and longer, truncates,
/// writes past EOF, mmap writes, renames over and unlinks of open files, link counts,
/// utimensat, setgid directories, the sticky bit, chmod/chown as unprivileged users,
/// fallocate in fragmented space, copy_file_range, xattrs, readdir during changes) runs on an
/// imagemount `--rw` mount and on the kernel's ext4 over a loop device of an identical image.
/// Every line of the two outputs (results, errnos, modes, owners, sizes, block counts, data
/// digests, which times moved) must agree, and the image must pass `e2fsck -fn` afterwards.
///
/// Beside it, fsx (Tests/Scripts/fsx.py): seeded random writes, mmap writes, truncates,
/// fallocate, hole punching and copy_file_range on one file, every read checked against a model.
@Suite(.serialized)
struct POSIXConformanceTests {
    static let formats = ["raw", "qcow2", "qcow2-luks"]

    static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts").appendingPathComponent(name).path
    }

    /// A fresh 256 MiB ext4 as `format` for imagemount, and a raw copy of the same bytes for the kernel.
    static func images(_ format: String, in dir: TempDir) throws -> (ours: String, kernel: String) {
        let raw = dir.file("fs.img"), kernel = dir.file("kernel.img")
        try Shell.check("truncate -s 256M \(Shell.quote(raw)) && mke2fs -q -F -t ext4 -b 4096 -I 256 -N 65536 \(Shell.quote(raw)) && " +
                        "cp --sparse=always \(Shell.quote(raw)) \(Shell.quote(kernel))")
        return (try WritableFormats.prepare(raw, format: format), kernel)
    }

    /// Lets the unprivileged users of the script reach a mountpoint inside a 0700 temp dir.
    static func openUp(_ dir: TempDir) throws {
        try Shell.check("chmod 0755 \(Shell.quote(dir.path))")
    }

    @Test(arguments: formats)
    func scriptGivesTheKernelsResults(format: String) throws {
        let dir = try TempDir("imagemount-posix")
        let (image, kernelImage) = try Self.images(format, in: dir)
        let ours = try FuseMount(images: [image], arguments: ["--rw", "-o", "allow_other"] + WritableFormats.arguments(image, format: format))
        let oursLog = dir.file("ours.log"), kernelLog = dir.file("kernel.log")
        do {
            defer { ours.close() }
            let kernel = try KernelMount(image: kernelImage, writable: true)
            defer { kernel.close() }
            try Self.openUp(ours.directory)
            try Self.openUp(kernel.directory)
            try Shell.check("mkdir \(Shell.quote(ours.path + "/t")) \(Shell.quote(kernel.path + "/t"))")
            let s = Shell.quote(Self.script("posix-conformance.py"))
            // Both at once: the script's own waits (a clock tick per step) dominate its time.
            let run = try Shell.run("python3 \(s) \(Shell.quote(ours.path + "/t")) > \(Shell.quote(oursLog)) & " +
                                    "python3 \(s) \(Shell.quote(kernel.path + "/t")) > \(Shell.quote(kernelLog)); k=$?; wait $!; o=$?; " +
                                    "echo \"$o $k\"")
            #expect(run.text == "0 0\n", "script exit statuses (ours, kernel): \(run.text) \(run.stderr)")
        }
        #expect(!FuseMount.isMounted(ours.path))
        let mine = try String(contentsOfFile: oursLog, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let theirs = try String(contentsOfFile: kernelLog, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(theirs.count > 700, "the kernel's run stopped early: \(theirs.suffix(3))")
        #expect(!theirs.contains { $0.hasPrefix("script error") }, "the script itself failed on the kernel")
        let differences = zip(theirs, mine).enumerated().filter { $0.element.0 != $0.element.1 }
            .map { "line \($0.offset + 1): kernel «\($0.element.0)» imagemount «\($0.element.1)»" }
        #expect(mine.count == theirs.count, "imagemount \(mine.count) lines, kernel \(theirs.count)")
        #expect(differences.isEmpty, "\(differences.count) differences, first: \(differences.prefix(8).joined(separator: "\n"))")
        let raw = try WritableFormats.finish(image, format: format)
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(raw)) 2>&1")
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.text)")
    }

    /// O_TMPFILE: the kernel's ext4 has it; FUSE needs the server's tmpfile operation, which
    /// libfuse 3.14's low-level API does not have, so the kernel answers EOPNOTSUPP for us
    /// (what programs that try O_TMPFILE fall back from). The test pins both answers.
    @Test func tmpfileIsTheOneKnownDifference() throws {
        let dir = try TempDir("imagemount-posix")
        let (image, kernelImage) = try Self.images("raw", in: dir)
        let ours = try FuseMount(images: [image], arguments: ["--rw"])
        defer { ours.close() }
        let kernel = try KernelMount(image: kernelImage, writable: true)
        defer { kernel.close() }
        let probe = "import os,sys,errno\ntry:\n  fd=os.open(sys.argv[1], os.O_TMPFILE|os.O_RDWR, 0o600); os.write(fd,b'x'); print('ok')\n" +
                    "except OSError as e: print('EOPNOTSUPP' if e.errno == errno.EOPNOTSUPP else errno.errorcode[e.errno])"
        #expect(try Shell.check("python3 -c \(Shell.quote(probe)) \(Shell.quote(kernel.path))") == "ok\n")
        #expect(try Shell.check("python3 -c \(Shell.quote(probe)) \(Shell.quote(ours.path))") == "EOPNOTSUPP\n")
    }

    /// fsx seeds and operations per seed; IMAGEMOUNT_FSX_OPERATIONS raises the count for a long run.
    static let fsxSeeds = [1, 2, 3, 4]
    static var fsxOperations: Int {
        ProcessInfo.processInfo.environment["IMAGEMOUNT_FSX_OPERATIONS"].flatMap(Int.init) ?? 25_000
    }

    @Test(arguments: formats)
    func fsxRandomOperationsMatchTheModel(format: String) throws {
        let dir = try TempDir("imagemount-fsx")
        let raw = dir.file("fs.img")
        try Shell.check("truncate -s 256M \(Shell.quote(raw)) && mke2fs -q -F -t ext4 -b 4096 -I 256 \(Shell.quote(raw))")
        let image = try WritableFormats.prepare(raw, format: format)
        let m = try FuseMount(images: [image], arguments: ["--rw"] + WritableFormats.arguments(image, format: format))
        do {
            defer { m.close() }
            for seed in Self.fsxSeeds {
                // Two files per run, one small (many overlapping edits) and one up to 8 MiB.
                let maxSize = seed % 2 == 0 ? 256 * 1024 : 8 << 20
                let r = try Shell.run("python3 \(Shell.quote(Self.script("fsx.py"))) \(Shell.quote(m.path + "/fsx-\(seed)")) \(seed) \(Self.fsxOperations) \(maxSize)")
                #expect(r.status == 0 && r.text.contains("all reads matched"), "\(r.text)\(r.stderr)")
            }
        }
        let back = try WritableFormats.finish(image, format: format)
        let fsck = try Shell.run("e2fsck -fn \(Shell.quote(back)) 2>&1")
        #expect(fsck.status == 0, "e2fsck -fn: \(fsck.text)")
    }
}
