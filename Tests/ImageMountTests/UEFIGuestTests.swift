import Foundation
import Testing
import TestSupport

/// A UEFI guest as installers lay it out: GPT, an EFI System Partition (FAT32, made with
/// mkfs.vfat and filled with mtools) and an ext4 root whose /etc/fstab mounts the ESP by its
/// volume ID with `umask=0077`. With -i the ESP appears at /boot/efi, mode 0700 from the
/// fstab options, its files as mtools wrote them.
@Suite(.serialized) struct UEFIGuestTests {
    static let volumeID = "49C9CF8C"
    static var uuid: String { String(volumeID.prefix(4)) + "-" + String(volumeID.suffix(4)) }

    final class Fixture: @unchecked Sendable {
        let dir: TempDir
        var disk: String { dir.file("uefi.img") }
        var grub: String { dir.file("src/grubx64.efi") }

        init() throws {
            dir = try TempDir("imagemount-uefi")
            let d = Shell.quote(dir.path)
            let script = """
                set -eu
                cd \(d)
                mkdir -p root/etc root/boot/efi src
                echo uefi-guest > root/etc/hostname
                printf 'UUID=\(UEFIGuestTests.uuid) /boot/efi vfat umask=0077,shortname=winnt 0 1\\n/dev/sda2 / ext4 defaults 0 1\\n' > root/etc/fstab
                printf '127.0.0.1 localhost\\n' > root/etc/hosts
                mkdir -p root/bin && cp /bin/ls root/bin/ls
                head -c 300000 /dev/urandom > src/grubx64.efi
                printf 'configfile $prefix/grub.cfg\\n' > src/grub.cfg
                truncate -s 64M esp.img
                mkfs.vfat -F 32 -i \(UEFIGuestTests.volumeID) -n ESP esp.img >/dev/null
                mmd -i esp.img ::/EFI ::/EFI/debian ::/EFI/BOOT
                mcopy -i esp.img src/grubx64.efi ::/EFI/debian/grubx64.efi
                mcopy -i esp.img src/grub.cfg ::/EFI/debian/grub.cfg
                mcopy -i esp.img src/grubx64.efi ::/EFI/BOOT/BOOTX64.EFI
                truncate -s 128M root.img
                mke2fs -q -F -t ext4 -d root root.img
                truncate -s 200M uefi.img
                sgdisk -n 1:2048:+64M -t 1:EF00 -n 2:0:+128M -t 2:8300 uefi.img >/dev/null
                dd if=esp.img of=uefi.img bs=512 seek=2048 conv=notrunc status=none
                start2=$(sgdisk -i 2 uefi.img | sed -n 's/^First sector: \\([0-9]*\\).*/\\1/p')
                dd if=root.img of=uefi.img bs=512 seek=$start2 conv=notrunc status=none
                rm -f esp.img root.img
                """
            try Shell.check("bash -c \(Shell.quote(script))")
        }
    }

    static let fixture = Result { try Fixture() }

    @Test func inspectionMountsTheESPAtBootEFIWithTheFstabUmask() throws {
        let f = try Self.fixture.get()
        let m = try FuseMount(images: [f.disk], arguments: ["-i", "--ro"])
        defer { m.close() }
        #expect(m.output.status == 0, "\(m.output.stderr)")
        var st = stat()
        #expect(stat(m.path + "/boot/efi", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o700, "mode \(String(st.st_mode, radix: 8))")
        #expect(stat(m.path + "/boot/efi/EFI/debian/grubx64.efi", &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o700, "files: 0777 & ~umask 0077 = 0700; got \(String(st.st_mode, radix: 8))")
        let cmp = try Shell.run("cmp \(Shell.quote(f.grub)) \(Shell.quote(m.path))/boot/efi/EFI/BOOT/BOOTX64.EFI")
        #expect(cmp.status == 0, "\(cmp.text)")
        #expect(try Shell.check("cat \(Shell.quote(m.path))/etc/hostname") == "uefi-guest\n")
    }

    @Test func catAndLsReachTheESPAndFstabResolvesTheVolumeID() throws {
        let f = try Self.fixture.get()
        let r = try ImageMountBinary.run(["cat", "-a", f.disk, "/boot/efi/EFI/debian/grub.cfg"])
        #expect(r.status == 0 && r.text == "configfile $prefix/grub.cfg\n", "\(r.stderr)")
        #expect(!r.stderr.contains("no such device"), "\(r.stderr)")
        let ls = try ImageMountBinary.check(["ls", "-a", f.disk, "/boot/efi/EFI"])
        #expect(ls.split(separator: "\n").sorted() == ["BOOT", "debian"], "\(ls)")
        let filesystems = try ImageMountBinary.check(["filesystems", "-a", f.disk, "--long", "--uuid", "-l"])
        #expect(filesystems.contains("/dev/sda1") && filesystems.contains("vfat") && filesystems.contains(Self.uuid), "\(filesystems)")
    }

    @Test func dfCountsTheESPAsTheKernelsFatStatfs() throws {
        let f = try Self.fixture.get()
        let df = try ImageMountBinary.run(["df", "-a", f.disk])
        #expect(df.status == 0, "\(df.stderr)")
        #expect(!df.stderr.contains("skipped"), "\(df.stderr)")
        // fsck.fat on the ESP's bytes: "N files, USED/TOTAL clusters" and the cluster size;
        // the kernel's fat_statfs reports exactly those clusters.
        let esp = f.dir.file("esp-copy.img")
        try Shell.check("dd if=\(Shell.quote(f.disk)) of=\(Shell.quote(esp)) bs=512 skip=2048 count=131072 status=none")
        let fsck = try Shell.check("fsck.fat -n -v \(Shell.quote(esp))")
        let clusterBytes = try #require(fsck.split(separator: "\n").first { $0.contains("bytes per cluster") }
            .flatMap { UInt64($0.split(separator: " ").first ?? "") })
        let counts = try #require(fsck.split(separator: "\n").last { $0.contains(" clusters") }?.split(separator: " ")
            .first { $0.contains("/") && $0.first?.isNumber == true }?.split(separator: "/").compactMap { UInt64($0) })
        let row = try #require(df.text.split(separator: "\n").first { $0.contains("/dev/sda1") }?.split(separator: " "))
        #expect(counts.count == 2 && row.count >= 3)
        #expect(UInt64(row[1]) == counts[1] * clusterBytes / 1024, "\(row) vs \(fsck)")
        #expect(UInt64(row[2]) == counts[0] * clusterBytes / 1024, "\(row) vs \(fsck)")
    }
}
