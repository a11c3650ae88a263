import Foundation
import Testing
import TestSupport

/// vfat through the commands and a `--rw` mount: the same workload run on the mount and on a
/// host directory, then `fsck.fat -n` clean and mtools reading back exactly the host's tree.
/// copy-in and edit write vfat too; what FAT cannot hold fails as the kernel's vfat fails.
@Suite(.serialized) struct VfatCommandTests {
    static func volume(_ dir: TempDir, fat: Int, megabytes: Int = 64) throws -> String {
        let image = dir.file("fat\(fat).img")
        try Shell.check("truncate -s \(megabytes)M \(Shell.quote(image)) && mkfs.vfat -F \(fat) -n VOL\(fat) \(Shell.quote(image)) >/dev/null")
        return image
    }

    /// The workload: long and short names, a deep tree, files of several sizes, a rename, a
    /// removal, truncation both ways.
    static let workload = """
        set -e
        mkdir -p a/b/c/d/e/f/g/h
        printf 'short\\n' > SHORT.TXT
        head -c 300000 /dev/urandom > 'A long file name with spaces.bin'
        head -c 70000 /dev/urandom > a/b/c/d/e/f/g/h/deep.dat
        for i in $(seq 1 40); do printf "$i\\n" > "a/entry number $i.txt"; done
        mv 'a/entry number 7.txt' a/b/renamed.txt
        rm 'a/entry number 8.txt'
        head -c 5000 /dev/urandom > trunc.bin && truncate -s 1000 trunc.bin && truncate -s 9000 trunc.bin
        mkdir empty && rmdir empty
        """

    @Test(arguments: [12, 16, 32])
    func rwMountWorkloadIsFsckCleanAndMtoolsReadsItBack(fat: Int) throws {
        let dir = try TempDir("imagemount-vfat")
        let image = try Self.volume(dir, fat: fat, megabytes: fat == 12 ? 8 : (fat == 16 ? 64 : 128))
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        let host = dir.file("host")
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: false)
        try Shell.check("cd \(Shell.quote(m.path)) && bash -c \(Shell.quote(Self.workload))")
        try Shell.check("cd \(Shell.quote(host)) && bash -c \(Shell.quote(Self.workload.replacingOccurrences(of: "/dev/urandom", with: "/dev/zero")))")
        // Same names and sizes through the mount as on the host (contents differ: urandom).
        let ours = try Shell.check("cd \(Shell.quote(m.path)) && find . -printf '%y %s %p\\n' | grep -v '^d' | sort")
        let theirs = try Shell.check("cd \(Shell.quote(host)) && find . -printf '%y %s %p\\n' | grep -v '^d' | sort")
        #expect(ours == theirs)
        // Keep what the mount holds, to compare with mtools after the unmount.
        let snapshot = dir.file("snapshot")
        try Shell.check("cp -r \(Shell.quote(m.path)) \(Shell.quote(snapshot))")
        m.close()
        let fsck = try Shell.run("fsck.fat -n \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        let out = dir.file("mcopy")
        try Shell.check("mkdir \(Shell.quote(out)) && mcopy -s -n -i \(Shell.quote(image)) '::*' \(Shell.quote(out))")
        let diff = try Shell.run("diff -r \(Shell.quote(snapshot)) \(Shell.quote(out))")
        #expect(diff.status == 0, "\(diff.text)")
    }

    @Test func whatFATCannotHoldFailsAsTheKernelsVfat() throws {
        let dir = try TempDir("imagemount-vfat")
        let image = try Self.volume(dir, fat: 32, megabytes: 64)
        let m = try FuseMount(images: [image], arguments: ["--rw"])
        defer { m.close() }
        let p = Shell.quote(m.path)
        try Shell.check("echo x > \(p)/file")
        #expect(try Shell.run("ln -s file \(p)/link 2>&1").text.contains("Operation not permitted"))
        #expect(try Shell.run("ln \(p)/file \(p)/hard 2>&1").text.contains("Operation not permitted"))
        #expect(try Shell.run("mkfifo \(p)/fifo 2>&1").text.contains("Operation not permitted"))
        #expect(try Shell.run("chown 1000 \(p)/file 2>&1").text.contains("Operation not permitted"))
        #expect(try Shell.run("setfattr -n user.x -v 1 \(p)/file 2>&1").text.contains("not supported"))
        #expect(try Shell.run("truncate -s 5G \(p)/big 2>&1").text.contains("File too large"))
        // Filling the volume stops with ENOSPC and leaves it clean.
        let fill = try Shell.run("dd if=/dev/zero of=\(p)/fill bs=1M 2>&1")
        #expect(fill.status != 0 && fill.text.contains("No space left on device"), "\(fill.text)")
        try Shell.check("rm \(p)/fill")
        m.close()
        let fsck = try Shell.run("fsck.fat -n \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
    }

    @Test func copyInAndEditWriteVfat() throws {
        let dir = try TempDir("imagemount-vfat")
        let image = try Self.volume(dir, fat: 16)
        let src = dir.file("src")
        try Shell.check("mkdir -p \(Shell.quote(src))/EFI/Boot && head -c 200000 /dev/urandom > \(Shell.quote(src))/EFI/Boot/grubx64.efi && printf 'timeout 5\\n' > \(Shell.quote(src))/EFI/Boot/grub.cfg")
        try ImageMountBinary.check(["copy-in", "-a", image, src + "/EFI", "/"])
        try ImageMountBinary.check(["edit", "-a", image, "/EFI/Boot/grub.cfg", "-e", "s/5/0/"])
        let fsck = try Shell.run("fsck.fat -n \(Shell.quote(image)) 2>&1")
        #expect(fsck.status == 0, "\(fsck.text)")
        #expect(try Shell.check("mtype -i \(Shell.quote(image)) ::/EFI/Boot/grub.cfg") == "timeout 0\n")
        let out = dir.file("out")
        try Shell.check("mkdir \(Shell.quote(out)) && mcopy -i \(Shell.quote(image)) ::/EFI/Boot/grubx64.efi \(Shell.quote(out))/")
        #expect(try Shell.run("cmp \(Shell.quote(src))/EFI/Boot/grubx64.efi \(Shell.quote(out))/grubx64.efi").status == 0)
        // A floppy (FAT12, no partition table) is a whole-disk volume.
        let floppy = dir.file("floppy.img")
        try Shell.check("mkfs.fat -C -F 12 \(Shell.quote(floppy)) 1440 >/dev/null && printf 'boot\\n' > \(Shell.quote(dir.file("b.txt"))) && mcopy -i \(Shell.quote(floppy)) \(Shell.quote(dir.file("b.txt"))) '::/Boot Disk.txt'")
        #expect(try ImageMountBinary.check(["cat", "-a", floppy, "/Boot Disk.txt"]) == "boot\n")
    }
}
