import Foundation
import Testing
import TestSupport

/// `imagemount cat` against the bytes the images were built from.
@Suite struct CatCommandTests {
    func expected(_ relative: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + relative))
    }

    @Test(arguments: Fixtures.extVariants.map(\.name))
    func everyFileIsByteIdentical(variant: String) throws {
        let v = try #require(Fixtures.extVariants.first { $0.name == variant })
        let image = try Fixtures.image(v.name, type: v.type, options: v.options)
        for relative in Fixtures.tree.regularFiles where !relative.hasPrefix("many/") {
            let result = try ImageMountBinary.run(["cat", "-a", image, "/" + relative])
            #expect(result.status == 0, "\(relative): \(result.stderr)")
            #expect(result.stdout == (try expected(relative)), "\(relative)")
        }
    }

    @Test(arguments: Fixtures.qcow2Variants.map(\.name))
    func everyFileIsByteIdenticalOnQcow2(variant: String) throws {
        let v = try #require(Fixtures.qcow2Variants.first { $0.name == variant })
        let image = try Fixtures.qcow2(Fixtures.image("ext4", type: "ext4"), options: v.options)
        for relative in Fixtures.tree.regularFiles where !relative.hasPrefix("many/") {
            let result = try ImageMountBinary.run(["cat", "-a", image, "/" + relative])
            #expect(result.status == 0, "\(relative): \(result.stderr)")
            #expect(result.stdout == (try expected(relative)), "\(relative)")
        }
        // Partitions inside qcow2: an MBR logical partition.
        let disk = try Fixtures.qcow2(DiskFixtures.mbr().path, options: v.options)
        let logical = try ImageMountBinary.run(["cat", "-a", disk, "-m", "/dev/sda5", "/etc/hostname"])
        #expect(logical.text == "boot-on-sda5\n", "\(logical.stderr)")
    }

    @Test func severalPathsAreConcatenatedAndSymlinksFollowedInTheGuest() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let result = try ImageMountBinary.run(["cat", "-a", image, "/etc/hostname", "/abs-link", "/etc/fast-link", "/data/slow-link"])
        #expect(result.status == 0, "\(result.stderr)")
        let host = try expected("etc/hostname")
        #expect(result.stdout == host + host + host + (try expected("data/deep/er/still/leaf.txt")))
    }

    @Test func logicalPartitionByEveryName() throws {
        let disk = try DiskFixtures.mbr()
        let uuid = try Shell.check("blkid -p -o value -s UUID --offset \(disk.partitions[5]!.start) \(Shell.quote(disk.path))")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for name in ["/dev/sda5", "/dev/vda5", "/dev/hda5", "/dev/xvda5", "LABEL=BOOT", "UUID=\(uuid)", "PARTUUID=1badcafe-05"] {
            let result = try ImageMountBinary.run(["cat", "-a", disk.path, "-m", name, "/etc/hostname"])
            #expect(result.status == 0, "\(name): \(result.stderr)")
            #expect(result.text == "boot-on-sda5\n", "\(name)")
        }
    }

    @Test func twoFilesystemsMakeOneTree() throws {
        let disk = try DiskFixtures.mbr()
        let result = try ImageMountBinary.run(["cat", "-a", disk.path, "-m", "/dev/sda1", "-m", "/dev/sda5:/data/deep",
                                               "/data/deep/etc/hostname", "/etc/hostname"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == "boot-on-sda5\n" + String(decoding: try expected("etc/hostname"), as: UTF8.self))
    }

    @Test func gptPartitionsByLabel() throws {
        let disk = try DiskFixtures.gpt()
        let boot = try ImageMountBinary.run(["cat", "-a", disk.path, "-m", "PARTLABEL=boot", "/etc/hostname"])
        #expect(boot.status == 0 && boot.text == "boot-on-gpt2\n", "\(boot.stderr)")
        let root = try ImageMountBinary.run(["cat", "-a", disk.path, "-m", "/dev/sda1", "/data/r65537"])
        #expect(root.stdout == (try expected("data/r65537")))
    }

    @Test func formatOptionAppliesToTheFollowingImage() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let forced = try ImageMountBinary.run(["cat", "--format=raw", "-a", image, "/etc/hostname"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let wrong = try ImageMountBinary.run(["cat", "--format", "qcow2", "-a", image, "/etc/hostname"])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains(image), "\(wrong.stderr)")
    }

    @Test func severalFilesystemsWithoutMountIsAnError() throws {
        let disk = try DiskFixtures.mbr()
        let result = try ImageMountBinary.run(["cat", "-a", disk.path, "/etc/hostname"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/dev/sda1") && result.stderr.contains("/dev/sda5"), "\(result.stderr)")
    }
}

extension CatCommandTests {
    /// virt-cat hands each path to guestfs_download, whose daemon refuses a relative one
    /// ("path must start with a / character"); virt-cat counts the error, prints the other
    /// paths, and exits 1.
    @Test func relativePathIsRefusedAndTheOthersStillPrinted() throws {
        let image = try Fixtures.image("ext4", type: "ext4")
        let result = try ImageMountBinary.run(["cat", "-a", image, "etc/hostname", "/etc/hostname", "./etc/hostname"])
        #expect(result.status == 1)
        #expect(result.stdout == (try expected("etc/hostname")), "the absolute path is printed")
        #expect(result.stderr.contains("etc/hostname: path must start with a / character"), "\(result.stderr)")
        #expect(result.stderr.contains("./etc/hostname: path must start with a / character"), "\(result.stderr)")
        // A missing file in the middle does not stop the ones after it either.
        let missing = try ImageMountBinary.run(["cat", "-a", image, "/nonexistent", "/etc/hostname"])
        let hostname = try expected("etc/hostname")
        #expect(missing.status == 1 && missing.stdout == hostname, "\(missing.stderr)")
    }
}
