import Foundation
import Testing
import TestSupport

/// ISO 9660 through the commands and the mount: `-a x.iso` works directly, as for the virt-*
/// tools; the tree through the mount equals the source xorriso was given (Rock Ridge names,
/// modes, owners, symlinks, contents); writes are EROFS; an isohybrid image shows its ISO as
/// /dev/sda1 (MBR record 1, type 0, from sector 0), as Linux and blkid do.
@Suite(.serialized) struct ISOCommandTests {
    final class Fixture: @unchecked Sendable {
        let dir: TempDir
        var source: String { dir.file("src") }
        var rockRidge: String { dir.file("rr.iso") }
        var hybrid: String { dir.file("hybrid.iso") }

        init() throws {
            dir = try TempDir("imagemount-iso")
            let script = """
                set -eu
                cd \(Shell.quote(dir.path))
                mkdir -p src/dir/sub src/isolinux src/efi src/empty
                echo hello > src/a.txt && chown 12:34 src/a.txt && chmod 640 src/a.txt
                ln -s a.txt src/link && ln -s /etc/absolute src/dir/abs
                head -c 300000 /dev/urandom > src/dir/sub/random.bin
                printf 'name with spaces\\n' > 'src/dir/A Long Mixed-Case Name.txt'
                chmod 4755 src/dir/sub
                cp /usr/lib/ISOLINUX/isolinux.bin src/isolinux/
                truncate -s 1M src/efi/efiboot.img && mkfs.vfat src/efi/efiboot.img >/dev/null
                xorriso -as mkisofs -quiet -R -J -V RRISO -o rr.iso src 2>/dev/null
                xorriso -as mkisofs -quiet -R -J -V HYBRID -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \\
                    -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table \\
                    -eltorito-alt-boot -e efi/efiboot.img -no-emul-boot -isohybrid-gpt-basdat -o hybrid.iso src 2>/dev/null
                """
            try Shell.check("bash -c \(Shell.quote(script))")
        }
    }

    static let fixture = Result { try Fixture() }

    @Test func mountShowsTheSourceTree() throws {
        let f = try Self.fixture.get()
        let m = try FuseMount(images: [f.rockRidge])
        defer { m.close() }
        #expect(m.output.status == 0, "\(m.output.stderr)")
        let diff = try Shell.run("diff -r --no-dereference \(Shell.quote(f.source)) \(Shell.quote(m.path))")
        #expect(diff.status == 0, "\(diff.text)")
        // Names, types, modes, owners, sizes and link targets as the source has them.
        let listing = "find . -printf '%y %m %U:%G %s %p %l\\n' | grep -v '^d' | sort"
        let theirs = try Shell.check("cd \(Shell.quote(f.source)) && \(listing)")
        let ours = try Shell.check("cd \(Shell.quote(m.path)) && \(listing)")
        #expect(ours == theirs)
        let dirs = "find . -type d -printf '%m %U:%G %p\\n' | sort"
        #expect(try Shell.check("cd \(Shell.quote(m.path)) && \(dirs)") == Shell.check("cd \(Shell.quote(f.source)) && \(dirs)"))
        let touch = try Shell.run("touch \(Shell.quote(m.path))/new 2>&1")
        #expect(touch.status != 0 && touch.text.contains("Read-only file system"), "\(touch.text)")
    }

    @Test func commandsOpenTheISODirectly() throws {
        let f = try Self.fixture.get()
        #expect(try ImageMountBinary.check(["cat", "-a", f.rockRidge, "/a.txt"]) == "hello\n")
        let ls = try ImageMountBinary.check(["ls", "-a", f.rockRidge, "/dir"])
        #expect(ls.split(separator: "\n").sorted() == ["A Long Mixed-Case Name.txt", "abs", "sub"], "\(ls)")
        let out = try TempDir("imagemount-iso-out")
        try ImageMountBinary.check(["copy-out", "-a", f.rockRidge, "/dir", out.path])
        #expect(try Shell.run("diff -r --no-dereference \(Shell.quote(f.source + "/dir")) \(Shell.quote(out.file("dir")))").status == 0)
        let filesystems = try ImageMountBinary.check(["filesystems", "-a", f.rockRidge, "-l"])
        #expect(filesystems.contains("iso9660") && filesystems.contains("RRISO"), "\(filesystems)")
        // --rw over an ISO: the image is not written, writes are EROFS.
        let edit = try ImageMountBinary.run(["edit", "-a", f.rockRidge, "/a.txt", "-e", "s/hello/bye/"])
        #expect(edit.status != 0, "\(edit.stderr)")
    }

    @Test func isohybridShowsTheISOAsTheFirstPartition() throws {
        let f = try Self.fixture.get()
        let all = try ImageMountBinary.check(["filesystems", "-a", f.hybrid, "--all", "--long"])
        #expect(all.contains("/dev/sda1") && all.contains("iso9660") && all.contains("HYBRID"), "\(all)")
        #expect(all.contains("/dev/sda2") && all.contains("vfat"), "\(all)")
        let r = try ImageMountBinary.run(["cat", "-a", f.hybrid, "-m", "/dev/sda1", "/a.txt"])
        #expect(r.status == 0 && r.text == "hello\n", "\(r.stderr)")
        #expect(!r.stderr.contains("skipped"), "\(r.stderr)")
    }

    /// `filesystems --boot-images` lists the El Torito catalog as xorriso reports it.
    @Test func bootCatalogIsListedAsXorrisoReportsIt() throws {
        let f = try Self.fixture.get()
        // "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4          49"
        let report = try Shell.check("xorriso -indev \(Shell.quote(f.hybrid)) -report_el_torito plain 2>/dev/null")
        var expected: [String] = []
        for line in report.split(separator: "\n") where line.hasPrefix("El Torito boot img :") {
            let w = line.dropFirst("El Torito boot img :".count).split(separator: " ")
            guard w.count >= 8, let sectors = UInt64(w[6]) else { continue }
            expected.append("/dev/sda1:boot\(w[0]),boot,\"\(w[1]) \(w[3])\",\(w[2] == "y" ? "bootable" : "not bootable"),\(sectors * 512),/dev/sda1")
        }
        #expect(expected.count == 2, "\(report)")
        let out = try ImageMountBinary.check(["filesystems", "-a", f.hybrid, "--boot-images", "--long", "--csv", "--no-title"])
        #expect(out.split(separator: "\n").map(String.init) == expected, "\(out)")
        // --all lists them after the rows virt-filesystems has; a plain ISO has none.
        let all = try ImageMountBinary.check(["filesystems", "-a", f.hybrid, "--all"])
        #expect(all.split(separator: "\n").suffix(2) == ["/dev/sda1:boot1", "/dev/sda1:boot2"], "\(all)")
        let plain = try ImageMountBinary.check(["filesystems", "-a", f.rockRidge, "--boot-images"])
        #expect(plain.isEmpty, "\(plain)")
    }
}
