import Foundation
import Testing
import TestSupport

/// `imagemount filesystems` against blkid, sfdisk and the kernel's statfs on the same images.
@Suite("filesystems command")
struct FilesystemsCommandTests {
    typealias Images = CLITestImages

    @Test("whole-disk ext4: default output is just the device name")
    func defaultListing() throws {
        let image = try Images.wholeDisk.get()
        #expect(try ImageMountBinary.check(["filesystems", "-a", image]) == "/dev/sda\n")
    }

    @Test("--long --uuid: VFS, label and UUID as blkid sees them, size as the kernel's statfs")
    func longWithUUID() throws {
        let image = try Images.wholeDisk.get()
        let blkid = try Images.blkid(image)
        let statfsBytes = try Images.withKernelMount(image) { mnt in
            let f = try Images.statfs(mnt, "%b %S", count: 2)
            return f[0] * f[1]
        }
        let out = try ImageMountBinary.check(["filesystems", "-a", image, "--long", "--uuid"])
        let lines = Images.lines(out)
        try #require(lines.count == 2)
        #expect(Images.columns(lines[0]) == ["Name", "Type", "VFS", "Label", "Size", "Parent", "UUID"])
        #expect(Images.columns(lines[1]) == ["/dev/sda", "filesystem", blkid["TYPE"] ?? "?", blkid["LABEL"] ?? "?",
                                             String(statfsBytes), "-", blkid["UUID"] ?? "?"])
    }

    @Test("text columns line up: each as wide as its widest cell, two spaces apart under 72 columns")
    func alignment() throws {
        let image = try Images.wholeDisk.get()
        let out = try ImageMountBinary.check(["filesystems", "-a", image, "--all", "-l", "-h"])
        // Widths: Name 8, Type 10, VFS 4, Label 6, MBR 3, Size 3, Parent 6 = 40 + 16 gaps: two spaces.
        #expect(out == """
            Name      Type        VFS   Label   MBR  Size  Parent
            /dev/sda  filesystem  ext4  rootfs  -    55M   -
            /dev/sda  device      -     -       -    64M   -

            """)
    }

    @Test("--csv: empty cells are empty fields; --no-title drops the heading")
    func csvAndNoTitle() throws {
        let image = try Images.wholeDisk.get()
        let size = try Images.lines(ImageMountBinary.check(["filesystems", "-a", image, "-l", "--no-title", "--csv"]))
        let bytes = try #require(size.first.map { $0.split(separator: ",", omittingEmptySubsequences: false) })
        #expect(bytes.count == 6)
        #expect(Array(bytes[0...3]) == ["/dev/sda", "filesystem", "ext4", "rootfs"])
        #expect(UInt64(bytes[4]) != nil)
        #expect(bytes[5] == "")
        let all = try ImageMountBinary.check(["filesystems", "-a", image, "--all", "--long", "--csv"])
        #expect(Images.lines(all) == [
            "Name,Type,VFS,Label,MBR,Size,Parent",
            "/dev/sda,filesystem,ext4,rootfs,,\(bytes[4]),",
            "/dev/sda,device,,,,\(64 << 20),",
        ])
    }

    @Test("--block-devices lists each drive in -a order with its size")
    func blockDevices() throws {
        let first = try Images.wholeDisk.get(), second = try Images.secondDisk.get()
        let out = try ImageMountBinary.check(["filesystems", "-a", first, "-a", second, "--block-devices", "-l", "--csv"])
        #expect(Images.lines(out) == ["Name,Type,Size,Parent", "/dev/sda,device,\(64 << 20),", "/dev/sdb,device,\(8 << 20),"])
        let fs = try ImageMountBinary.check(["filesystems", "-a", first, "-a", second])
        #expect(fs == "/dev/sda\n/dev/sdb\n")
    }

    @Test("-h with --csv is refused, as virt-filesystems refuses it")
    func humanWithCSV() throws {
        let image = try Images.wholeDisk.get()
        let result = try ImageMountBinary.run(["filesystems", "-a", image, "-h", "--csv"])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("-h and --csv"))
    }

    @Test("a missing image is one line on stderr and a non-zero exit")
    func missingImage() throws {
        let result = try ImageMountBinary.run(["filesystems", "-a", Images.path("no-such.img")])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        #expect(Images.lines(result.stderr).count == 1)
        #expect(result.stderr.hasPrefix("imagemount: ") && result.stderr.contains("no-such.img"))
    }

    @Test("an unformatted disk is 'unknown', shown only with --extra")
    func unknownDevice() throws {
        let blank = Images.path("blank.img")
        try Shell.check("truncate -s 4M \(blank)")
        #expect(try ImageMountBinary.check(["filesystems", "-a", blank]) == "")
        let out = try ImageMountBinary.check(["filesystems", "-a", blank, "--extra", "-l", "--csv"])
        #expect(Images.lines(out) == ["Name,Type,VFS,Label,Size,Parent", "/dev/sda,filesystem,unknown,,\(4 << 20),"])
    }

    // NEEDS PARTITIONS: passes once the MBR/GPT reader replaces PartitionTableStub.
    @Test("MBR: --partitions with MBR ids, sizes and parents as sfdisk gives them; extended is 1 KiB")
    func mbrPartitions() throws {
        let image = try Images.mbrDisk.get()
        let parts = try Images.partitionOffsets(image)
        let out = try ImageMountBinary.check(["filesystems", "-a", image, "--partitions", "-l", "--csv"])
        var expected = ["Name,Type,MBR,Size,Parent"]
        for p in parts.sorted(by: { $0.number < $1.number }) {
            let size = p.type == "5" ? 1024 : p.size
            expected.append("/dev/sda\(p.number),partition,\(p.type.count < 2 ? "0" + p.type : p.type),\(size),/dev/sda")
        }
        #expect(expected.count == 5)
        #expect(Images.lines(out) == expected)
    }

    // NEEDS PARTITIONS: passes once the MBR/GPT reader replaces PartitionTableStub.
    @Test("MBR: filesystems skip the extended container and (without --extra) swap; labels and UUIDs match blkid")
    func mbrFilesystems() throws {
        let image = try Images.mbrDisk.get()
        let parts = try Images.partitionOffsets(image)
        #expect(try ImageMountBinary.check(["filesystems", "-a", image]) == "/dev/sda1\n/dev/sda6\n")
        let out = try ImageMountBinary.check(["filesystems", "-a", image, "--extra", "-l", "--uuid", "--csv", "--no-title"])
        let rows = Images.lines(out).map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.map { $0[0] } == ["/dev/sda1", "/dev/sda5", "/dev/sda6"])
        for row in rows {
            let number = try #require(Int(row[0].dropFirst("/dev/sda".count)))
            let p = try #require(parts.first { $0.number == number })
            let blkid = try Images.blkid(image, offset: p.start, size: p.size)
            #expect(row[1] == "filesystem")
            #expect(row[2] == blkid["TYPE"])
            #expect(row[3] == (blkid["LABEL"] ?? ""))
            #expect(row[6] == (blkid["UUID"] ?? ""))
            if blkid["TYPE"] == "swap" { #expect(row[4] == String(p.size)) }
        }
    }

    // NEEDS PARTITIONS: passes once the MBR/GPT reader replaces PartitionTableStub.
    @Test("GPT: no MBR ids, the Microsoft Reserved partition is not a filesystem, empty partitions are 'unknown'")
    func gptPartitions() throws {
        let image = try Images.gptDisk.get()
        let parts = try Images.partitionOffsets(image)
        let out = try ImageMountBinary.check(["filesystems", "-a", image, "--all", "-l", "--csv"])
        let sizes = Dictionary(uniqueKeysWithValues: parts.map { ($0.number, $0.size) })
        let first = try #require(parts.first { $0.number == 1 })
        let fsSize = try Images.withKernelMount(image, offset: first.start, size: first.size) { mnt in
            let f = try Images.statfs(mnt, "%b %S", count: 2)
            return f[0] * f[1]
        }
        #expect(Images.lines(out) == [
            "Name,Type,VFS,Label,MBR,Size,Parent",
            "/dev/sda1,filesystem,ext4,gptroot,,\(fsSize),",
            "/dev/sda3,filesystem,unknown,,,\(sizes[3] ?? 0),",
            "/dev/sda1,partition,,,,\(sizes[1] ?? 0),/dev/sda",
            "/dev/sda2,partition,,,,\(sizes[2] ?? 0),/dev/sda",
            "/dev/sda3,partition,,,,\(sizes[3] ?? 0),/dev/sda",
            "/dev/sda,device,,,,\(48 << 20),",
        ])
    }
}

extension FilesystemsCommandTests {
    @Test("virt-filesystems' other spellings list the same: --parts, --blkdevs, --uuids, --human-readable, --filesystems (the default)")
    func spellings() throws {
        let image = try Images.mbrDisk.get()
        for (short, long) in [(["--parts"], ["--partitions"]), (["--blkdevs"], ["--block-devices"]),
                              (["-l", "--uuids"], ["-l", "--uuid"]), (["-l", "--human-readable"], ["-l", "-h"]),
                              (["--filesystems"], [String]()), (["--long"], ["-l"])] {
            let a = try ImageMountBinary.check(["filesystems", "-a", image] + short)
            let b = try ImageMountBinary.check(["filesystems", "-a", image] + long)
            #expect(a == b && !a.isEmpty, "\(short) vs \(long)")
        }
        // -h changes the Size column (bytes to a rounded size with a suffix).
        let bytes = try ImageMountBinary.check(["filesystems", "-a", image, "--parts", "-l", "--csv"])
        let human = try ImageMountBinary.check(["filesystems", "-a", image, "--parts", "-l"])
        #expect(Images.lines(bytes).dropFirst().allSatisfy { $0.split(separator: ",")[3].allSatisfy(\.isNumber) })
        #expect(Images.lines(human).count == Images.lines(bytes).count)
        let rounded = try ImageMountBinary.check(["filesystems", "-a", image, "--parts", "-l", "-h"])
        #expect(rounded != human && rounded.contains("M "), "\(rounded)")
    }
}
