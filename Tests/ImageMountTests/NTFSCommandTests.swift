import Foundation
import Testing
import TestSupport

/// NTFS through the commands and the FUSE mount, compared with ntfs-3g's own read-only mount of
/// the same image (NTFSImages builds it with mkntfs and fills it through ntfs-3g): `ls -l`,
/// `cat`, `copy-out`, `filesystems`, `df`, the mount's whole tree (names, modes, sizes, links,
/// inode numbers, times, symlink targets, bytes, user.* streams); a damaged volume is one line and
/// a non-zero exit. Writes are NTFSWriteCommandTests'.
@Suite(.serialized) struct NTFSCommandTests {
    static let images = Result { try NTFSImages() }

    static func sha256(_ path: String) throws -> String {
        try Shell.check("sha256sum \(Shell.quote(path))").split(separator: " ").first.map(String.init) ?? ""
    }

    @Test func lsCatAndCopyOutMatchNtfs3g() throws {
        let f = try Self.images.get()
        try f.withOracle { oracle in
            let ls = try ImageMountBinary.check(["ls", "-a", f.image, "-l", "/"])
            let want = try Shell.check("cd \(Shell.quote(oracle)) && LC_ALL=C ls -la .")
            // The same lines, less "total" and ".." (the oracle's is the host's parent), with
            // the columns' padding squeezed.
            func lines(_ text: String) -> [String] {
                text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
                    .filter { !$0.hasPrefix("total ") && !$0.hasSuffix(" ..") }
            }
            #expect(lines(ls) == lines(want), "ours:\n\(ls)\nntfs-3g:\n\(want)")
            #expect(lines(ls).count == 18)   // "." and the 17 names the fixture made
            let names = try ImageMountBinary.check(["ls", "-a", f.image, "/many"]).split(separator: "\n")
            #expect(names.count == NTFSImages.manyCount)
            #expect(try ImageMountBinary.check(["cat", "-a", f.image, "/a.txt", "/été ünï ☃.txt", "/deep/1/2/3/4/5/6/7/8/9/leaf.txt"])
                    == "hello\nunicode\nat the bottom\n")
            let out = try TempDir("imagemount-ntfs-out")
            try ImageMountBinary.check(["copy-out", "-a", f.image, "/deep", "/comp", "/sparse.bin", "/big.bin", "/日本語のファイル名.txt", out.path])
            for name in ["deep", "comp", "sparse.bin", "big.bin", "日本語のファイル名.txt"] {
                let diff = try Shell.run("diff -r --no-dereference \(Shell.quote(oracle + "/" + name)) \(Shell.quote(out.file(name)))")
                #expect(diff.status == 0, "\(name): \(diff.text)")
            }
            // copy-out keeps the holes of the sparse file.
            let blocks = try Shell.check("stat -c %b \(Shell.quote(out.file("sparse.bin")))").trimmingCharacters(in: .whitespacesAndNewlines)
            #expect((Int(blocks) ?? 99999) < 1024, "sparse copy holds \(blocks) blocks")
        }
        let missing = try ImageMountBinary.run(["cat", "-a", f.image, "/no/such"])
        #expect(missing.status != 0 && missing.stdout.isEmpty)
    }

    @Test func mountMatchesNtfs3g() throws {
        let f = try Self.images.get()
        let m = try FuseMount(images: [f.image], arguments: ["-m", "/dev/sda", "--ro"])
        defer { m.close() }
        #expect(m.output.status == 0, "\(m.output.stderr)")
        try f.withOracle { oracle in
            let ours = try NTFSImages.listing(m.path), want = try NTFSImages.listing(oracle)
            let (a, b) = (Set(ours.split(separator: "\n")), Set(want.split(separator: "\n")))
            #expect(ours == want, "only ours: \(a.subtracting(b).sorted().prefix(8)) only ntfs-3g: \(b.subtracting(a).sorted().prefix(8))")
            #expect(ours.split(separator: "\n").count > NTFSImages.manyCount)
            let diff = try Shell.run("diff -r --no-dereference -x fifo \(Shell.quote(oracle)) \(Shell.quote(m.path))")
            #expect(diff.status == 0, "\(diff.text)")
            let xattrs = try Shell.check("getfattr --absolute-names -d \(Shell.quote(m.path + "/streams.txt"))")
            #expect(xattrs == (try Shell.check("getfattr --absolute-names -d \(Shell.quote(oracle + "/streams.txt"))"))
                        .replacingOccurrences(of: oracle, with: m.path))
            #expect(xattrs.contains("user.stream=\"stream value\""), "\(xattrs)")
        }
        let touch = try Shell.run("touch \(Shell.quote(m.path))/new 2>&1")
        #expect(touch.status != 0 && touch.text.contains("Read-only file system"), "\(touch.text)")
    }

    @Test func filesystemsAndDfOnEveryLayout() throws {
        let f = try Self.images.get()
        let uuid = try Shell.check("blkid -p -o value -s UUID \(Shell.quote(f.image))").trimmingCharacters(in: .whitespacesAndNewlines)
        for (image, device) in [(f.image, "/dev/sda"), (f.partitioned, "/dev/sda1"), (f.qcow2, "/dev/sda")] {
            let text = try ImageMountBinary.check(["filesystems", "-a", image, "-l", "--uuid"])
            let line = text.split(separator: "\n").first { $0.hasPrefix(device + " ") }.map(String.init) ?? ""
            #expect(line.contains("ntfs") && line.contains(NTFSImages.label) && line.contains(uuid), "\(image): \(text)")
            #expect(try ImageMountBinary.check(["cat", "-a", image, "/a.txt"]) == "hello\n", "\(image)")
        }
        let statfs = try f.withOracle { try Shell.check("stat -f -c '%S %b %f %a' \(Shell.quote($0))") }
            .split(separator: " ").compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        try #require(statfs.count == 4)
        let lines = try ImageMountBinary.check(["df", "-a", f.image]).split(separator: "\n").map(String.init)
        try #require(lines.count == 2)
        let kib = statfs[0] / 1024
        #expect(lines[1].split(separator: " ").dropFirst().prefix(3).map(String.init)
                == [String(statfs[1] * kib), String((statfs[1] - statfs[2]) * kib), String(statfs[3] * kib)], "\(lines[1])")
    }

    /// A boot sector declaring 2^31-byte MFT records (0xE1 at 0x40), index records, or 4 MiB
    /// clusters: one line, nothing written. (The probe already rejects the first and last, as
    /// blkid does; the driver's own refusal is NTFSFilesystemTests.outOfBoundsBootSectorSizes.)
    @Test func outOfBoundsBootSectorSizesAreOneLine() throws {
        let f = try Self.images.get()
        let copy = try TempDir("imagemount-ntfs-boot")
        for (offset, byte) in [(0x40, "\\341"), (0x44, "\\341"), (0x0D, "\\363")] {
            let bad = copy.file("bad-\(offset).img")
            try Shell.check("cp --sparse=always \(Shell.quote(f.image)) \(Shell.quote(bad))")
            try Shell.check("printf '\(byte)' | dd of=\(Shell.quote(bad)) bs=1 seek=\(offset) conv=notrunc status=none")
            let before = try Self.sha256(bad)
            let cat = try ImageMountBinary.run(["cat", "-a", bad, "/a.txt"])
            #expect(cat.status != 0 && cat.stdout.isEmpty)
            #expect(cat.stderr.hasPrefix("imagemount: ") && cat.stderr.split(separator: "\n").count == 1, "\(offset): \(cat.stderr)")
            if offset == 0x44 { #expect(cat.stderr.contains("NTFS boot sector") && cat.stderr.contains("index records of 2147483648 bytes"), "\(cat.stderr)") }
            #expect(try Self.sha256(bad) == before)
        }
    }

    @Test func damagedVolumeIsOneLine() throws {
        let f = try Self.images.get()
        let copy = try TempDir("imagemount-ntfs-bad")
        let bad = copy.file("bad.img")
        try Shell.check("cp --sparse=always \(Shell.quote(f.image)) \(Shell.quote(bad))")
        // The boot sector says where $MFT is (bytes per sector at 0x0B, sectors per cluster at
        // 0x0D, the $MFT LCN at 0x30, clusters per MFT record at 0x40, negative for 2^-n bytes:
        // ntfs-3g/layout.h NTFS_BOOT_SECTOR). Overwrite the "FILE" magic of record 5, the root
        // directory, which $MFTMirr does not hold: the volume still probes as NTFS (blkid reads
        // records 0-3), and libntfs-3g's mount fails when it looks $Secure up in the root.
        let boot = try [UInt8](Data(contentsOf: URL(fileURLWithPath: bad)).prefix(512))
        let cluster = (UInt64(boot[0x0B]) | UInt64(boot[0x0C]) << 8) * UInt64(boot[0x0D])
        func u64(_ at: Int) -> UInt64 { (0 ..< 8).reduce(UInt64(0)) { $0 | UInt64(boot[at + $1]) << (8 * UInt64($1)) } }
        let perRecord = Int8(bitPattern: boot[0x40])
        let recordSize = perRecord < 0 ? UInt64(1) << UInt64(-Int(perRecord)) : UInt64(perRecord) * cluster
        try Shell.check("printf 'JUNK' | dd of=\(Shell.quote(bad)) bs=1 seek=\(u64(0x30) * cluster + 5 * recordSize) conv=notrunc status=none")
        let before = try Self.sha256(bad)
        let oracle = try Shell.run("ntfsls -f \(Shell.quote(bad)) 2>&1")
        #expect(oracle.status != 0, "ntfsls still reads it: \(oracle.text)")
        let cat = try ImageMountBinary.run(["cat", "-a", bad, "/a.txt"])
        #expect(cat.status != 0 && cat.stdout.isEmpty)
        #expect(cat.stderr.hasPrefix("imagemount: ") && cat.stderr.split(separator: "\n").count == 1 && cat.stderr.contains("NTFS"), "\(cat.stderr)")
        #expect(try Self.sha256(bad) == before)
    }
}
