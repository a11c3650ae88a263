/// What a block device holds, as blkid would name it (`TYPE=`), with its label and UUID.
public struct VolumeContent: Sendable, Equatable {
    /// blkid's TYPE: "ext2", "ext3", "ext4", "swap", "LVM2_member", "crypto_LUKS", "xfs",
    /// "btrfs", "vfat", "ntfs", or nil when nothing is recognised.
    public let type: String?
    public let label: String?
    public let uuid: String?

    public var isExt: Bool { type == "ext2" || type == "ext3" || type == "ext4" }
}

/// Recognises the content of a block device from its magic numbers, reading a few sectors.
/// Each signature cites where its layout is defined. Reads past the end or failing reads
/// mean "not this type", never an error: probing must work on damaged devices.
public enum VolumeProbe {
    public static func probe(_ device: any BlockDevice) -> VolumeContent {
        func bytes(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard offset + UInt64(count) <= device.size else { return nil }
            return try? device.readBytes(at: offset, count: count)
        }
        func text(_ b: ArraySlice<UInt8>) -> String? {
            let s = String(decoding: b.prefix(while: { $0 != 0 }), as: UTF8.self)
                .trimmingCharacters(in: " ")
            return s.isEmpty ? nil : s
        }
        // ext2/3/4: superblock at 1024, magic 0xEF53 at +0x38 (ext4 super.rst).
        if let sb = bytes(1024, 256), sb[0x38] == 0x53, sb[0x39] == 0xEF {
            let compat = le32(sb, 0x5C), incompat = le32(sb, 0x60), roCompat = le32(sb, 0x64)
            let type: String
            if incompat & ~UInt32(0x2 | 0x4 | 0x10) != 0 || roCompat & ~UInt32(0x1 | 0x2 | 0x4) != 0 {
                type = "ext4"
            } else {
                type = compat & 0x4 != 0 ? "ext3" : "ext2"
            }
            return VolumeContent(type: type, label: text(sb[0x78..<0x88]),
                                 uuid: Ext2Superblock.formatUUID(Array(sb[0x68..<0x78])))
        }
        // LUKS1/LUKS2: "LUKS\xba\xbe" at 0; UUID string at 0xA8 (LUKS1 spec "PHDR"; LUKS2 binary header).
        if let h = bytes(0, 512), h.starts(with: [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE]) {
            let label = (h[7] == 2) ? text(h[0x18..<0x48]) : nil
            return VolumeContent(type: "crypto_LUKS", label: label, uuid: text(h[0xA8..<0xD0]))
        }
        // LVM2 PV: "LABELONE" in one of the first four sectors, "LVM2 001" at +0x18, PV UUID at +0x20
        // (lvm2 lib/format_text/layout.h, label_header + pv_header).
        for sector in 0..<4 {
            if let l = bytes(UInt64(sector) * 512, 64), l.starts(with: Array("LABELONE".utf8)),
               Array(l[0x18..<0x20]) == Array("LVM2 001".utf8) {
                let raw = String(decoding: l[0x20..<0x40], as: UTF8.self)
                return VolumeContent(type: "LVM2_member", label: nil, uuid: lvmUUID(raw))
            }
        }
        // Linux swap: "SWAPSPACE2" at page end - 10; UUID at 1036, label at 1052 (linux/swap.h).
        for page: UInt64 in [4096, 8192, 16384, 65536] {
            if let m = bytes(page - 10, 10), m == Array("SWAPSPACE2".utf8), let h = bytes(1024, 64) {
                return VolumeContent(type: "swap", label: text(h[28..<44]),
                                     uuid: Ext2Superblock.formatUUID(Array(h[12..<28])))
            }
        }
        // XFS: "XFSB" at 0; UUID at 32, label at 108 (xfs_format.h, xfs_dsb).
        if let x = bytes(0, 128), x.starts(with: Array("XFSB".utf8)) {
            return VolumeContent(type: "xfs", label: text(x[108..<120]), uuid: Ext2Superblock.formatUUID(Array(x[32..<48])))
        }
        // Btrfs: the 4 KiB superblock at 64 KiB, "_BHRfS_M" at +0x40, fsid at +0x20, the 256-byte
        // label at +0x12B (btrfs on-disk format, "Superblock"; kernel fs/btrfs/accessors.h,
        // struct btrfs_super_block). Read whole: the label ends at +0x22B.
        if let b = bytes(0x10000, 0x1000), Array(b[0x40..<0x48]) == Array("_BHRfS_M".utf8) {
            return VolumeContent(type: "btrfs", label: text(b[0x12B..<0x22B]), uuid: Ext2Superblock.formatUUID(Array(b[0x20..<0x30])))
        }
        if let boot = bytes(0, 512), boot[510] == 0x55, boot[511] == 0xAA {
            if Array(boot[3..<11]) == Array("NTFS    ".utf8) { return VolumeContent(type: "ntfs", label: nil, uuid: nil) }
            if Array(boot[0x52..<0x57]) == Array("FAT32".utf8) || Array(boot[0x36..<0x39]) == Array("FAT".utf8) {
                return VolumeContent(type: "vfat", label: nil, uuid: nil)
            }
        }
        return VolumeContent(type: nil, label: nil, uuid: nil)
    }

    static func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
    }

    /// LVM shows its 32-character UUIDs in groups of 6-4-4-4-4-4-6.
    static func lvmUUID(_ raw: String) -> String {
        let c = Array(raw)
        guard c.count == 32 else { return raw }
        var out = "", i = 0
        for (n, len) in [6, 4, 4, 4, 4, 4, 6].enumerated() {
            if n > 0 { out += "-" }
            out += String(c[i..<i + len]); i += len
        }
        return out
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
