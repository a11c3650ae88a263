import Foundation
import Testing
import TestSupport

/// The CLI with encrypted guests and images: --key, --keys-from-stdin, and the errors.
@Suite struct LUKSCommandTests {
    @Test func catWithInspectionThroughLUKSOnLVM() throws {
        let g = try LUKSFixtures.luksOnLVM()
        let result = try ImageMountBinary.run(["cat", "-a", g.image, "-i", "--key", "all:key:" + LUKSFixtures.passphrase, "/etc/hostname"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == g.hostname + "\n")
        let big = try ImageMountBinary.run(["cat", "-a", g.image, "--key", "all:key:" + LUKSFixtures.passphrase, "/srv/random.bin"])
        let dir = (g.plaintext as NSString).deletingLastPathComponent
        #expect(big.stdout == (try Data(contentsOf: URL(fileURLWithPath: dir + "/tree/srv/random.bin"))))
    }

    @Test func keysFromStdinAndKeyFiles() throws {
        let g = try LUKSFixtures.lvmInLUKS()
        let stdin = try ImageMountBinary.run(["cat", "-a", g.image, "-i", "--keys-from-stdin", "/etc/hostname"],
                                             stdin: Data((LUKSFixtures.passphrase + "\n").utf8))
        #expect(stdin.status == 0, "\(stdin.stderr)")
        #expect(stdin.text == g.hostname + "\n")
        let dir = try TempDir("imagemount-keyfile")
        try Data(LUKSFixtures.passphrase.utf8).write(to: URL(fileURLWithPath: dir.file("key")))
        let file = try ImageMountBinary.run(["cat", "-a", g.image, "-i", "--key", "/dev/sda2:file:" + dir.file("key"), "/etc/hostname"])
        #expect(file.text == g.hostname + "\n", "\(file.stderr)")
    }

    /// The KDF cost caps are options: a cap below the fixture's own cost refuses its key slot
    /// with one line naming the cost; raising the cap past it opens the volume.
    @Test func kdfCapsAreOptions() throws {
        let g = try LUKSFixtures.luksOnLVM()
        let key = ["--key", "all:key:" + LUKSFixtures.passphrase]
        let low = try ImageMountBinary.run(["cat", "--max-kdf-iterations", "1000", "-a", g.image, "-i"] + key + ["/etc/hostname"])
        #expect(low.status != 0 && low.stderr.contains("above the limit of 1000"), "\(low.stderr)")
        let high = try ImageMountBinary.run(["cat", "--max-kdf-iterations", "4000000000", "-a", g.image, "-i"] + key + ["/etc/hostname"])
        #expect(high.status == 0 && high.text == g.hostname + "\n", "\(high.stderr)")
        let argon = try LUKSFixtures.argon2WholeDisk()
        let small = try ImageMountBinary.run(["filesystems", "--max-kdf-memory", "16", "-a", argon.image] + key)
        #expect(small.status != 0 || small.stderr.contains("argon2"), "\(small.stderr)")
    }

    @Test func filesystemsListsTheUnlockedVolume() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        let result = try ImageMountBinary.run(["filesystems", "-a", g.image, "--key", "all:key:" + LUKSFixtures.passphrase])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text.contains("/dev/mapper/luks-\(g.luksUUID)"))
    }

    @Test func missingAndWrongKeysAreClearErrors() throws {
        let g = try LUKSFixtures.luksOnLVM()
        let none = try ImageMountBinary.run(["cat", "-a", g.image, "-i", "/etc/hostname"])
        #expect(none.status != 0)
        #expect(none.stderr.contains("left locked") && none.stderr.contains("/dev/vgcrypt/root"), "\(none.stderr)")
        let wrong = try ImageMountBinary.run(["cat", "-a", g.image, "-i", "--key", "all:key:hunter2", "/etc/hostname"])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("wrong passphrase"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("hunter2"))
        let bad = try ImageMountBinary.run(["cat", "-a", g.image, "--key", "nocolons-secret", "/etc/hostname"])
        #expect(bad.status != 0)
        #expect(!bad.stderr.contains("nocolons-secret"), "\(bad.stderr)")
    }

    @Test func encryptedQcow2Image() throws {
        let g = try LUKSFixtures.argon2WholeDisk()
        let dir = try TempDir("imagemount-cli-qcow2-luks")
        let image = dir.file("enc.qcow2")
        // The plaintext filesystem in a LUKS qcow2 made by qemu-img.
        try Shell.check(LUKSFixtures.retryFunction + "\nretry qemu-img convert --object secret,id=s,data=pw -O qcow2 -o encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=100 \(Shell.quote(g.plaintext)) \(Shell.quote(image))")
        let ok = try ImageMountBinary.run(["cat", "-a", image, "--key", image + ":key:pw", "/etc/hostname"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.text == g.hostname + "\n")
        let byDrive = try ImageMountBinary.run(["cat", "-a", image, "--key", "/dev/sda:key:pw", "/etc/hostname"])
        #expect(byDrive.text == g.hostname + "\n", "\(byDrive.stderr)")
        let none = try ImageMountBinary.run(["cat", "-a", image, "/etc/hostname"])
        #expect(none.status != 0)
        #expect(none.stderr.contains(image) && none.stderr.contains("no key was given"), "\(none.stderr)")
    }
}

/// The mount server gets its keys through a pipe: none on its command line, and
/// --keys-from-stdin works although the server's own stdin is /dev/null.
@Suite(.serialized) struct LUKSMountTests {
    @Test(arguments: [false, true])
    func mountServesTheDecryptedRoot(fromStdin: Bool) throws {
        let g = try LUKSFixtures.luksOnLVM()
        let m = fromStdin
            ? try FuseMount(images: [g.image], arguments: ["-i", "--keys-from-stdin"], stdin: Data((LUKSFixtures.passphrase + "\n").utf8))
            : try FuseMount(images: [g.image], arguments: ["-i", "--key", "/dev/vgcrypt/root:key:" + LUKSFixtures.passphrase])
        defer { m.close() }
        #expect(try String(contentsOfFile: m.path + "/etc/hostname", encoding: .utf8) == g.hostname + "\n")
        let pid = try #require(m.serverPID)
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        #expect(!String(decoding: cmdline, as: UTF8.self).contains(LUKSFixtures.passphrase))
        #expect(!String(decoding: cmdline, as: UTF8.self).contains("--key "))
    }
}
