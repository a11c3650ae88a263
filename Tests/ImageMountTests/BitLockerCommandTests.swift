import Foundation
import Testing
import TestSupport

/// BitLocker volumes: listed by `filesystems` with blkid's type name, refused by `cat`, `ls`
/// and `mount` with one line and a non-zero exit, the image untouched. No tool makes BitLocker
/// volumes here, so the test writes what libblkid's bitlocker.c checks: a Windows 7 volume
/// header ("\xEB\x58\x90-FVE-FS-" with the serial at 67 and the first FVE metadata block's
/// offset at 176) and a metadata block starting "-FVE-FS-" (libyal libbde, "BitLocker Drive
/// Encryption (BDE) format"), at the start of an MBR partition and of a whole disk.
@Suite struct BitLockerCommandTests {
    static func bitLockerHeader(_ image: String, at base: UInt64) throws {
        let script = """
            import struct, sys
            path, base = sys.argv[1], int(sys.argv[2])
            h = bytearray(512)
            h[0:11] = b'\\xeb\\x58\\x90-FVE-FS-'
            h[67:71] = struct.pack('<I', 12345)
            h[176:184] = struct.pack('<Q', 1 << 20)
            h[510:512] = b'\\x55\\xaa'
            with open(path, 'r+b') as f:
                f.seek(base); f.write(h)
                f.seek(base + (1 << 20)); f.write(b'-FVE-FS-\\x40\\x00\\x02\\x00')
            """
        try Shell.check("python3 -c \(Shell.quote(script)) \(Shell.quote(image)) \(base)")
    }

    static func sha256(_ path: String) throws -> String {
        try Shell.check("sha256sum \(Shell.quote(path))").split(separator: " ").first.map(String.init) ?? ""
    }

    @Test func listedAndRefusedWithOneLine() throws {
        let dir = try TempDir("imagemount-bitlocker")
        let disk = dir.file("disk.img"), whole = dir.file("whole.img")
        try Shell.check("truncate -s 8M \(Shell.quote(disk)) \(Shell.quote(whole))")
        try Shell.check("printf 'label: dos\\nstart=2048, type=7\\n' | sfdisk -q --no-reread --no-tell-kernel \(Shell.quote(disk))")
        try Self.bitLockerHeader(disk, at: 2048 * 512)
        try Self.bitLockerHeader(whole, at: 0)
        for (image, device, offset) in [(disk, "/dev/sda1", 2048 * 512), (whole, "/dev/sda", 0)] {
            let blkid = try Shell.check("blkid -p -O \(offset) -o value -s TYPE \(Shell.quote(image))")
            #expect(blkid.trimmingCharacters(in: .whitespacesAndNewlines) == "BitLocker", "\(image): blkid says \(blkid)")
            let before = try Self.sha256(image)
            let listed = try ImageMountBinary.check(["filesystems", "-a", image, "-l"])
            let line = listed.split(separator: "\n").first { $0.hasPrefix(device + " ") }.map(String.init) ?? ""
            #expect(line.split(separator: " ").contains("BitLocker"), "\(image): \(listed)")
            let mnt = try TempDir("imagemount-bitlocker-mnt")
            for arguments in [["cat", "-a", image, "-m", device, "/x"], ["ls", "-a", image, "-m", device, "/"],
                              ["cat", "-a", image, "/x"], ["mount", "-a", image, "-m", device, "--ro", mnt.path]] {
                let run = try ImageMountBinary.run(arguments)
                #expect(run.status != 0 && run.stdout.isEmpty, "\(arguments): exit \(run.status)")
                let lines = run.stderr.split(separator: "\n")
                #expect(lines.count == 1 && run.stderr.hasPrefix("imagemount: ") && run.stderr.contains("BitLocker"),
                        "\(arguments): \(run.stderr)")
            }
            #expect(!FuseMount.isMounted(mnt.path))
            #expect(try Self.sha256(image) == before, "\(image) changed")
        }
    }
}
