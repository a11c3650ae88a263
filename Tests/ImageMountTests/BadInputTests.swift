import Foundation
import Testing
import TestSupport

/// Bad input gets one clear line on stderr naming what and where, exit status 1, no crash,
/// no hang, and the image unchanged.
@Suite struct BadInputTests {
    /// Runs imagemount and checks the failure shape; returns stderr.
    @discardableResult
    func expectFailure(_ arguments: [String], mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try ImageMountBinary.run(arguments)
        #expect(result.status == 1, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n").filter { !$0.contains("warning:") }
        #expect(lines.count == 1, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("imagemount: "), sourceLocation: sourceLocation)
        for word in mentions {
            #expect(result.stderr.contains(word), "'\(word)' missing from: \(result.stderr)", sourceLocation: sourceLocation)
        }
        return result.stderr
    }

    func checksum(_ path: String) throws -> String { try Shell.check("sha256sum < \(Shell.quote(path))") }

    @Test func missingImage() throws {
        try expectFailure(["cat", "-a", "/nonexistent/disk.img", "/etc/hostname"], mentions: ["/nonexistent/disk.img", "No such file"])
    }

    @Test func pathThatDoesNotExistInTheGuest() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        try expectFailure(["cat", "-a", image, "/etc/no-such-file"], mentions: ["/etc/no-such-file", "no such file"])
        try expectFailure(["copy-out", "-a", image, "/nope/deeper", Fixtures.scratch.path], mentions: ["/nope/deeper"])
        try expectFailure(["cat", "-a", image, "/etc"], mentions: ["/etc", "directory"])
    }

    @Test func deviceThatDoesNotExist() throws {
        let disk = try DiskFixtures.mbr()
        try expectFailure(["cat", "-a", disk.path, "-m", "/dev/sda9", "/etc/hostname"], mentions: ["/dev/sda9", "no such device"])
        try expectFailure(["cat", "-a", disk.path, "-m", "/dev/sdb1", "/etc/hostname"], mentions: ["/dev/sdb1"])
        try expectFailure(["cat", "-a", disk.path, "-m", "/dev/sda2", "/etc/hostname"], mentions: ["/dev/sda2"])
    }

    @Test func truncatedImage() throws {
        let dir = try TempDir()
        let image = dir.file("short.img")
        let source = try Fixtures.image("ext4", type: "ext4")
        // Cut the image just inside the file's first data block, found with debugfs.
        let block = try Shell.check("debugfs -R 'bmap /data/r1048579 0' \(Shell.quote(source)) 2>/dev/null")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let blockSize = try Shell.check("dumpe2fs -h \(Shell.quote(source)) 2>/dev/null | sed -n 's/^Block size: *//p'")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let cut = try #require(Int(block)) * (try #require(Int(blockSize))) + 100
        try Shell.check("head -c \(cut) \(Shell.quote(source)) > \(Shell.quote(image))")
        let before = try checksum(image)
        let result = try ImageMountBinary.run(["cat", "-a", image, "/data/r1048579"])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(image), "\(result.stderr)")
        #expect(try checksum(image) == before)
    }

    @Test func notAFilesystem() throws {
        let dir = try TempDir()
        let image = dir.file("random.img")
        try Shell.check("head -c 4M /dev/urandom > \(Shell.quote(image))")
        try expectFailure(["cat", "-a", image, "/etc/hostname"], mentions: [image, "no filesystem found that imagemount opens ("])
    }

    @Test func partitionPastTheEndIsNotUsable() throws {
        let dir = try TempDir()
        let image = dir.file("past.img")
        try Shell.check("cp --sparse=always \(Shell.quote(try DiskFixtures.mbr().path)) \(Shell.quote(image)) && truncate -s 80M \(Shell.quote(image))")
        // sda6 starts at 83 MiB: now entirely past the end. sda1 is still readable.
        let ok = try ImageMountBinary.run(["cat", "-a", image, "-m", "/dev/sda1", "/etc/hostname"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stderr.contains("warning") && ok.stderr.contains("end"), "\(ok.stderr)")
        try expectFailure(["cat", "-a", image, "-m", "/dev/sda6", "/etc/hostname"], mentions: ["/dev/sda6"])
    }

    @Test func ebrLoopDoesNotHang() throws {
        let dir = try TempDir()
        let image = dir.file("loop.img")
        let disk = try DiskFixtures.mbr()
        try Shell.check("cp --sparse=always \(Shell.quote(disk.path)) \(Shell.quote(image))")
        // The second EBR (before sda6, at sector 169984 - 2048) gets a "next" link pointing back
        // to the first EBR (sector 133120), relative to the extended partition: 0.
        let secondEBR = (169_984 - 2048) * 512
        try Shell.check("printf '\\x00\\x00\\x00\\x00\\x05\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x08\\x00\\x00' | " +
                        "dd of=\(Shell.quote(image)) bs=1 seek=\(secondEBR + 446 + 16) conv=notrunc 2>/dev/null")
        let result = try Shell.run("timeout 20 \(Shell.quote((try ImageMountBinary.path()))) cat -a \(Shell.quote(image)) -m /dev/sda5 /etc/hostname")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == "boot-on-sda5\n")
        #expect(result.stderr.contains("EBR"), "\(result.stderr)")
    }

    @Test func damagedMetadataNeverCrashes() throws {
        // Random bytes over the superblock, group descriptors, bitmaps and inode tables: every
        // run must end with status 0 or 1 (never a signal) within the time limit.
        let dir = try TempDir()
        let source = try Fixtures.image("ext4", type: "ext4")
        var rng = SplitMix64(seed: 99)
        for round in 0..<24 {
            let image = dir.file("damaged-\(round).img")
            try Shell.check("cp --sparse=always \(Shell.quote(source)) \(Shell.quote(image))")
            for _ in 0..<40 {
                let offset = 1024 + Int(rng.next() % (2 * 1024 * 1024))
                try Shell.check("printf '\\x\(String(format: "%02x", rng.next() % 256))' | dd of=\(Shell.quote(image)) bs=1 seek=\(offset) conv=notrunc 2>/dev/null")
            }
            let out = dir.file("out-\(round)")
            try Shell.check("mkdir \(Shell.quote(out))")
            for command in ["cat -a \(Shell.quote(image)) /etc/hostname /data/r1048579 /data/slow-link",
                            "copy-out -a \(Shell.quote(image)) / \(Shell.quote(out))"] {
                let result = try Shell.run("timeout 30 \(Shell.quote((try ImageMountBinary.path()))) \(command) > /dev/null")
                #expect(result.status == 0 || result.status == 1, "round \(round): \(command) → status \(result.status): \(result.stderr.suffix(300))")
            }
        }
    }
}
