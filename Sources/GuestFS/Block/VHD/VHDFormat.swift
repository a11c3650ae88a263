/// VHD on-disk layouts (Microsoft "Virtual Hard Disk Image Format Specification" 1.0; QEMU
/// block/vpc.c): the 512-byte hard disk footer, the 1024-byte dynamic disk header and the
/// block allocation table. Pure decoding, no I/O; every field is big-endian.
enum VHDFormat {
    static let footerSize = 512
    static let dynamicHeaderSize = 1024
    static let sectorSize: UInt64 = 512
    /// "Hard Disk Footer Format", Cookie.
    static let footerCookie = Array("conectix".utf8)
    /// "Dynamic Disk Header Format", Cookie.
    static let dynamicCookie = Array("cxsparse".utf8)
    /// A BAT entry for a block that is not allocated ("Block Allocation Table").
    static let unallocated: UInt32 = 0xFFFF_FFFF
    /// QEMU's VHD_MAX_SECTORS: 2040 GiB, the largest image QEMU opens.
    static let maxSectors: UInt64 = 0xFF00_0000
    /// QEMU's VHD_MAX_GEOMETRY: 65535 cylinders, 16 heads, 255 sectors (the ATA limit).
    static let maxGeometrySectors: UInt64 = 65535 * 16 * 255
    /// Most BAT entries imagemount keeps in memory (32 MiB of table); 2040 GiB in QEMU's
    /// default 2 MiB blocks needs about 1 M.
    static let maxTableEntries: UInt64 = 8 << 20

    enum DiskType: UInt32 {
        case fixed = 2, dynamic = 3, differencing = 4
    }

    /// Whether the first bytes of a file are a footer copy (QEMU's vpc_probe looks at offset 0 only,
    /// so a fixed disk, whose footer is only at the end, probes as raw).
    static func probe(_ header: [UInt8]) -> Bool {
        header.count >= 8 && Array(header[0 ..< 8]) == footerCookie
    }

    /// "Hard Disk Footer Format" checksum: the one's complement of the byte sum, the checksum
    /// field (bytes 64..<68) counted as zeros.
    static func checksum(_ bytes: [UInt8], skipping field: Range<Int>) -> UInt32 {
        var sum: UInt32 = 0
        for (i, b) in bytes.enumerated() where !field.contains(i) { sum &+= UInt32(b) }
        return ~sum
    }

    /// The hard disk footer.
    struct Footer {
        var dataOffset: UInt64
        var creatorApp: [UInt8]
        var currentSize: UInt64
        var cylinders: UInt16
        var heads: UInt8
        var sectorsPerTrack: UInt8
        var diskType: UInt32
        var checksum: UInt32
        var computedChecksum: UInt32

        init(_ raw: [UInt8]) {
            let b = BigEndianBytes(raw)
            dataOffset = b.u64(16)
            creatorApp = b.slice(28, 4)
            currentSize = b.u64(48)
            cylinders = b.u16(56)
            heads = b.u8(58)
            sectorsPerTrack = b.u8(59)
            diskType = b.u32(60)
            checksum = b.u32(64)
            computedChecksum = VHDFormat.checksum(raw, skipping: 64 ..< 68)
        }

        /// The virtual size as QEMU computes it (vpc_open): the CHS geometry's size, except for
        /// creators that size disks by "Current Size" (Hyper-V "win ", QEMU's force_size "qem2",
        /// Disk2vhd "d2v ", XenConverter "CTXS", XenServer "tap\0") and for disks at the largest
        /// geometry, where the geometry would truncate them.
        var virtualSize: UInt64 {
            let chs = UInt64(cylinders) * UInt64(heads) * UInt64(sectorsPerTrack)
            let sizedByCurrentSize = [Array("win ".utf8), Array("qem2".utf8), Array("d2v ".utf8), Array("CTXS".utf8),
                                      [0x74, 0x61, 0x70, 0x00]].contains(creatorApp)
            if sizedByCurrentSize || chs == VHDFormat.maxGeometrySectors {
                return currentSize / VHDFormat.sectorSize * VHDFormat.sectorSize
            }
            return chs * VHDFormat.sectorSize
        }
    }

    /// One parent locator entry of the dynamic disk header ("Parent Locator Entries").
    struct ParentLocator {
        var platformCode: UInt32
        var dataSpace: UInt32
        var dataLength: UInt32
        var dataOffset: UInt64
    }

    /// The dynamic disk header.
    struct DynamicHeader {
        var tableOffset: UInt64
        var maxTableEntries: UInt32
        var blockSize: UInt32
        var parentUnicodeName: [UInt8]
        var parentLocators: [ParentLocator]

        init(_ raw: [UInt8]) {
            let b = BigEndianBytes(raw)
            tableOffset = b.u64(16)
            maxTableEntries = b.u32(28)
            blockSize = b.u32(32)
            parentUnicodeName = b.slice(64, 512)
            parentLocators = (0 ..< 8).map { i in
                let at = 576 + 24 * i
                return ParentLocator(platformCode: b.u32(at), dataSpace: b.u32(at + 4), dataLength: b.u32(at + 8),
                                     dataOffset: b.u64(at + 16))
            }
        }

        /// Bytes of the sector bitmap in front of each block: one bit per sector, padded to a
        /// sector (QEMU's bitmap_size).
        var bitmapSize: UInt64 {
            (UInt64(blockSize) / (8 * 512) + 511) & ~511
        }
    }
}
