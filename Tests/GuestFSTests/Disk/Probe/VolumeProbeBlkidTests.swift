import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// Tests `Sources/GuestFS/Disk/Probe/`: for every type, an image made by the real mkfs tool, and
/// TYPE, LABEL and UUID compared with what `blkid -p -o export` says about the same file.
@Suite struct VolumeProbeBlkidTests {
    /// blkid's TYPE, LABEL and UUID for `path`, each from `blkid -p -o value -s TAG` (raw bytes;
    /// `-o export` would escape non-ASCII labels).
    static func blkid(_ path: String) throws -> [String: String] {
        var values: [String: String] = [:]
        for tag in ["TYPE", "LABEL", "UUID"] {
            let out = try Shell.run("blkid -p -o value -s \(tag) \(Shell.quote(path))")
            guard out.status == 0, out.text.hasSuffix("\n") else { continue }
            values[tag] = String(out.text.dropLast())
        }
        return values
    }

    /// Builds `name` with `command` (the file's path is `$F`), then expects the probe to agree
    /// with blkid, and blkid to say `type` (so a test never passes on two empty answers).
    @discardableResult
    static func compare(_ name: String, type: String, tool: String, _ command: String,
                        label: String? = nil) throws -> VolumeContent? {
        guard (try? Shell.run("command -v \(tool)"))?.status == 0 else {
            Issue.record("\(tool) missing: scripts/install-deps.sh installs it"); return nil
        }
        let dir = try TempDir("imagemount-probe")
        let path = dir.file(name)
        try Shell.check("F=\(Shell.quote(path)); cd \(Shell.quote(dir.path)) && \(command)")
        let expected = try blkid(path)
        let content = VolumeProbe.probe(try RawImage(path: path, writable: false))
        #expect(expected["TYPE"] == (type.isEmpty ? nil : type), "blkid: \(expected)")
        #expect(content.type == expected["TYPE"], "\(name): \(content) vs blkid \(expected)")
        #expect(content.label == expected["LABEL"], "\(name): \(content) vs blkid \(expected)")
        #expect(content.uuid == expected["UUID"], "\(name): \(content) vs blkid \(expected)")
        if let label { #expect(content.label == label) }
        return content
    }

    @Test func ext2() throws {
        try Self.compare("ext2.img", type: "ext2", tool: "mkfs.ext2", "truncate -s 8M $F && mkfs.ext2 -q -F -L e2label $F", label: "e2label")
    }
    @Test func ext3() throws {
        try Self.compare("ext3.img", type: "ext3", tool: "mkfs.ext3", "truncate -s 8M $F && mkfs.ext3 -q -F -L e3label $F", label: "e3label")
    }
    @Test func ext4() throws {
        try Self.compare("ext4.img", type: "ext4", tool: "mkfs.ext4", "truncate -s 8M $F && mkfs.ext4 -q -F -L e4label $F", label: "e4label")
        // ext4 without a journal, and ext4 features on an ext3-looking superblock.
        try Self.compare("ext4n.img", type: "ext4", tool: "mkfs.ext4", "truncate -s 8M $F && mkfs.ext4 -q -F -O ^has_journal $F")
        try Self.compare("ext3x.img", type: "ext4", tool: "mkfs.ext3", "truncate -s 8M $F && mkfs.ext3 -q -F -O extent,flex_bg $F")
    }
    @Test func testFilesystemFlag() throws {
        // test_fs on ext4 makes it ext4dev; on ext2 both ext4dev and ext2 match: ambivalent.
        try Self.compare("dev.img", type: "ext4dev", tool: "tune2fs", "truncate -s 8M $F && mkfs.ext4 -q -F $F && tune2fs -E test_fs $F >/dev/null")
        let dir = try TempDir("imagemount-probe")
        let path = dir.file("e2t.img")
        try Shell.check("truncate -s 8M \(Shell.quote(path)) && mkfs.ext2 -q -F \(Shell.quote(path)) && tune2fs -E test_fs \(Shell.quote(path)) >/dev/null")
        #expect(try Self.blkid(path)["TYPE"] == nil)
        #expect(VolumeProbe.probe(try RawImage(path: path, writable: false)).ambivalentTypes == ["ext4dev", "ext2"])
    }
    @Test func externalJournal() throws {
        try Self.compare("jbd.img", type: "jbd", tool: "mke2fs", "truncate -s 8M $F && mke2fs -q -F -O journal_dev -L jlabel $F")
    }
    @Test func xfs() throws {
        try Self.compare("xfs.img", type: "xfs", tool: "mkfs.xfs", "truncate -s 300M $F && mkfs.xfs -q -f -L xfslabel $F", label: "xfslabel")
    }
    @Test func btrfs() throws {
        try Self.compare("btrfs.img", type: "btrfs", tool: "mkfs.btrfs", "truncate -s 128M $F && mkfs.btrfs -q -f -L btrlabel $F", label: "btrlabel")
    }
    @Test func ntfs() throws {
        try Self.compare("ntfs.img", type: "ntfs", tool: "mkntfs", "truncate -s 16M $F && mkntfs -q -F -f -L 'Ntfs Label' $F 2>/dev/null", label: "Ntfs Label")
    }
    @Test(arguments: [12, 16, 32]) func vfat(bits: Int) throws {
        let size = [12: "4M", 16: "32M", 32: "64M"][bits] ?? "64M"
        try Self.compare("fat\(bits).img", type: "vfat", tool: "mkfs.vfat",
                         "truncate -s \(size) $F && mkfs.vfat -F \(bits) -n FAT\(bits)LAB $F >/dev/null", label: "FAT\(bits)LAB")
        // No label at all: neither the root directory nor the BPB has one ("NO NAME").
        try Self.compare("fat\(bits)n.img", type: "vfat", tool: "mkfs.vfat", "truncate -s \(size) $F && mkfs.vfat -F \(bits) $F >/dev/null")
    }
    @Test func vfatLabelIsTheRootDirectoryEntry() throws {
        // The boot sector's copy changed: LABEL stays the directory entry's (blkid: LABEL_FATBOOT).
        let content = try Self.compare("fatroot.img", type: "vfat", tool: "mkfs.vfat",
            "truncate -s 32M $F && mkfs.vfat -F 16 -n ROOTDIR $F >/dev/null && printf 'BPBNAME    ' | dd of=$F bs=1 seek=43 conv=notrunc status=none")
        #expect(content?.label == "ROOTDIR")
        // The directory entry gone (FAT16 root directory at (1 + 2 * FAT) sectors): no LABEL at all.
        try Self.compare("fatnolabel.img", type: "vfat", tool: "mkfs.vfat",
            "truncate -s 32M $F && mkfs.vfat -F 16 -R 1 -n GONE $F >/dev/null && dd if=/dev/zero of=$F bs=32 count=1 seek=$(( (1 + 2 * $(od -An -tu2 -j22 -N2 $F)) * 16 )) conv=notrunc status=none")
        // FAT32 with a broken FSInfo signature is not vfat; FAT16 without an extended boot
        // signature has no serial.
        try Self.compare("fsinfo.img", type: "", tool: "mkfs.vfat", "truncate -s 64M $F && mkfs.vfat -F 32 $F >/dev/null && printf XXXX | dd of=$F bs=1 seek=512 conv=notrunc status=none")
        try Self.compare("nosig.img", type: "vfat", tool: "mkfs.vfat", "truncate -s 32M $F && mkfs.vfat -F 16 $F >/dev/null && printf '\\0' | dd of=$F bs=1 seek=38 conv=notrunc status=none")
    }
    @Test func exfat() throws {
        try Self.compare("exfat.img", type: "exfat", tool: "mkfs.exfat", "truncate -s 16M $F && mkfs.exfat -L ExLabel $F >/dev/null", label: "ExLabel")
    }
    @Test func iso9660() throws {
        try Self.compare("x.iso", type: "iso9660", tool: "xorriso",
                         "mkdir -p t && echo hi > t/a && xorriso -as mkisofs -quiet -V ISOLABEL -J -o $F t 2>/dev/null", label: "ISOLABEL")
        // A label longer than Joliet's 16 characters, and one that is not the primary's.
        try Self.compare("g.iso", type: "iso9660", tool: "genisoimage",
                         "mkdir -p t && echo hi > t/a && genisoimage -quiet -V 'long label over sixteen' -J -o $F t")
        try Self.compare("n.iso", type: "iso9660", tool: "genisoimage",
                         "mkdir -p t && echo hi > t/a && genisoimage -quiet -V 'Ünïcode' -input-charset utf-8 -J -o $F t")
        // Joliet holds 16 characters: a different name is cut there, as blkid 2.38 shows it.
        try Self.compare("u.iso", type: "iso9660", tool: "genisoimage",
                         "mkdir -p t && echo hi > t/a && genisoimage -quiet -V 'Ünïcode label over sixteen' -input-charset utf-8 -J -o $F t",
                         label: "Ünïcode label ov")
        try Self.compare("p.iso", type: "iso9660", tool: "genisoimage", "mkdir -p t && echo hi > t/a && genisoimage -quiet -V plain -o $F t")
    }
    @Test func udf() throws {
        try Self.compare("udf.img", type: "udf", tool: "mkudffs", "truncate -s 16M $F && mkudffs --label=UdfLabel $F >/dev/null", label: "UdfLabel")
        try Self.compare("udf4k.img", type: "udf", tool: "mkudffs",
                         "truncate -s 16M $F && mkudffs --blocksize=4096 --label=Blocks4K --vsid=0123456789abcdefXYZ $F >/dev/null")
        try Self.compare("udfn.img", type: "udf", tool: "mkudffs",
                         "truncate -s 16M $F && mkudffs --label=Ünïcode --vsid=xyzxyzxyzxyz1234 $F >/dev/null")
        try Self.compare("udfh.img", type: "udf", tool: "mkudffs",
                         "truncate -s 16M $F && mkudffs --vsid=0123abcdXYZW5678 $F >/dev/null")
    }
    @Test func squashfs() throws {
        try Self.compare("sq.img", type: "squashfs", tool: "mksquashfs", "mkdir -p t && echo hi > t/a && mksquashfs t $F -quiet -noappend >/dev/null")
    }
    @Test func swap() throws {
        try Self.compare("swap.img", type: "swap", tool: "mkswap", "truncate -s 1M $F && mkswap -L swaplabel $F >/dev/null 2>&1", label: "swaplabel")
        try Self.compare("swap64k.img", type: "swap", tool: "mkswap", "truncate -s 2M $F && mkswap -p 65536 $F >/dev/null 2>&1")
    }
    @Test func luks1() throws {
        try Self.compare("luks1.img", type: "crypto_LUKS", tool: "cryptsetup",
                         "truncate -s 4M $F && printf pw | cryptsetup luksFormat -q --batch-mode --type luks1 --pbkdf-force-iterations 1000 --key-file - $F")
    }
    @Test func luks2() throws {
        let content = try Self.compare("luks2.img", type: "crypto_LUKS", tool: "cryptsetup",
            "truncate -s 16M $F && printf pw | cryptsetup luksFormat -q --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --label lukslabel --key-file - $F 2>/dev/null")
        #expect(content?.label == "lukslabel")
        // The primary header gone: blkid finds the secondary copy.
        try Self.compare("luks2s.img", type: "crypto_LUKS", tool: "cryptsetup",
            "truncate -s 16M $F && printf pw | cryptsetup luksFormat -q --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - $F 2>/dev/null && dd if=/dev/zero of=$F bs=1 count=6 conv=notrunc status=none")
    }
    @Test func luksWinsOverAStaleFilesystem() throws {
        // A LUKS1 header written over an ext4 without wiping it: ext4's superblock at 1 KiB survives.
        let content = try Self.compare("stale.img", type: "crypto_LUKS", tool: "cryptsetup",
            "truncate -s 8M $F && mkfs.ext4 -q -F $F && truncate -s 4M h.img && printf pw | cryptsetup luksFormat -q --batch-mode --type luks1 --pbkdf-force-iterations 1000 --key-file - h.img && dd if=h.img of=$F bs=592 count=1 conv=notrunc status=none")
        #expect(content?.type == "crypto_LUKS")
    }
    @Test func lvm2Member() throws {
        guard (try? Shell.run("command -v pvcreate"))?.status == 0 else { Issue.record("pvcreate missing"); return }
        let builder = try LVMImageBuilder()
        let image = builder.dir.file("pv.img")
        try Shell.check("truncate -s 16M \(Shell.quote(image)) && mkfs.ext4 -q -F \(Shell.quote(image))")
        try builder.withLoops([.init(image: image)]) { loops in
            try builder.lvm("pvcreate", "-y -q \(loops[0])", loops: loops)
        }
        let expected = try Self.blkid(image)
        let content = VolumeProbe.probe(try RawImage(path: image, writable: false))
        #expect(expected["TYPE"] == "LVM2_member")
        #expect(content.type == expected["TYPE"])
        #expect(content.uuid == expected["UUID"])
        #expect(content.label == nil && expected["LABEL"] == nil)
    }

    /// No tool makes BitLocker volumes here: a minimal Windows 7 header and FVE metadata block,
    /// built as libblkid's bitlocker.c checks them, compared with blkid all the same.
    @Test func bitLocker() throws {
        let dir = try TempDir("imagemount-probe")
        let path = dir.file("bde.img")
        try Shell.check("truncate -s 4M \(Shell.quote(path))")
        var header = [UInt8](repeating: 0, count: 512)
        header.replaceSubrange(0 ..< 11, with: [0xEB, 0x58, 0x90] + Array("-FVE-FS-".utf8))
        header.replaceSubrange(67 ..< 71, with: [0x39, 0x30, 0, 0])           // serial 12345
        header.replaceSubrange(176 ..< 184, with: [0, 0, 0x10, 0, 0, 0, 0, 0])  // metadata at 1 MiB
        header[510] = 0x55; header[511] = 0xAA
        let device = try RawImage(path: path, writable: true)
        try device.writeBytes(header, at: 0)
        try device.writeBytes(Array("-FVE-FS-".utf8) + [0x40, 0, 2, 0], at: 1 << 20)
        let expected = try Self.blkid(path)
        let content = VolumeProbe.probe(try RawImage(path: path, writable: false))
        #expect(expected["TYPE"] == "BitLocker")
        #expect(content.type == expected["TYPE"])
        #expect(content.uuid == expected["UUID"])
        #expect(content.uuid == "0000000000012345")
        // Without its metadata block it is nothing, for both.
        try device.writeBytes([0], at: 1 << 20)
        #expect(try Self.blkid(path)["TYPE"] == nil)
        #expect(VolumeProbe.probe(try RawImage(path: path, writable: false)).type == nil)
    }

    @Test func ambivalentSignatures() throws {
        // A FAT boot sector at 0 and an ext4 superblock at 1 KiB: blkid refuses to choose.
        let dir = try TempDir("imagemount-probe")
        let path = dir.file("both.img"), fat = dir.file("fat.img")
        try Shell.check("truncate -s 8M \(Shell.quote(path)) && mkfs.ext4 -q -F \(Shell.quote(path)) && truncate -s 8M \(Shell.quote(fat)) && mkfs.vfat -F 12 \(Shell.quote(fat)) >/dev/null && dd if=\(Shell.quote(fat)) of=\(Shell.quote(path)) bs=512 count=1 conv=notrunc status=none")
        #expect(try Self.blkid(path)["TYPE"] == nil)
        let content = VolumeProbe.probe(try RawImage(path: path, writable: false))
        #expect(content.type == nil)
        #expect(content.ambivalentTypes == ["vfat", "ext4"])
    }

    @Test func shortAndEmptyDevices() throws {
        for size in [0, 1, 512, 1024, 1025, 4096, 40960, 65536 + 0x40] {
            let device = TestMemoryDevice(bytes: [UInt8](repeating: 0, count: size))
            #expect(VolumeProbe.probe(device).type == nil)
        }
        // Every prober on every prefix of a real image: no trap, whatever it answers.
        let dir = try TempDir("imagemount-probe")
        let path = dir.file("fat.img")
        try Shell.check("truncate -s 2M \(Shell.quote(path)) && mkfs.vfat -F 12 \(Shell.quote(path)) >/dev/null")
        let bytes = try RawImage(path: path, writable: false).readBytes(at: 0, count: 64 << 10)
        for cut in stride(from: 0, through: bytes.count, by: 509) {
            _ = VolumeProbe.probe(TestMemoryDevice(bytes: Array(bytes.prefix(cut))))
        }
    }
}

/// A read-only device over an array, for probes of exact sizes.
final class TestMemoryDevice: BlockDevice, @unchecked Sendable {
    let bytes: [UInt8]
    init(bytes: [UInt8]) { self.bytes = bytes }
    var size: UInt64 { UInt64(bytes.count) }
    var isWritable: Bool { false }
    var displayName: String { "memory" }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[Int(offset) ..< Int(offset) + buffer.count])) }
    }
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }
    func flush() throws {}
}
