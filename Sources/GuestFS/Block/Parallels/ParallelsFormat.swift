import SystemPackage

/// Parallels disk image layout (QEMU's docs/interop/parallels.txt and block/parallels.c): a
/// little-endian 64-byte header, then the BAT (one 32-bit entry per cluster of `tracks`
/// sectors), then the data. An entry of 0 is an unallocated cluster; others give the cluster's
/// place in sectors ("WithoutFreeSpace", the old format) or in clusters ("WithouFreSpacExt").
/// Decoding and checks only, no I/O.
enum ParallelsFormat {
    static let headerSize = 64
    /// The two signatures (HEADER_MAGIC and HEADER_MAGIC2) and the one version (HEADER_VERSION).
    static let magicOld = Array("WithoutFreeSpace".utf8)
    static let magicExt = Array("WithouFreSpacExt".utf8)
    static let version: UInt32 = 2
    /// `inuse` when the image was not closed cleanly (HEADER_INUSE_MAGIC, "Ynot" read little-endian).
    static let inUseMagic: UInt32 = 0x746F_6E59
    static let sectorSize: UInt64 = 512
    /// parallels_open's limit on sectors per cluster (INT32_MAX / 513).
    static let maxTracks: UInt32 = UInt32(Int32.max) / 513
    /// Most BAT entries imagemount keeps in memory (32 MiB); QEMU's own bound is INT_MAX / 4.
    static let maxBATEntries: UInt32 = 8 << 20

    static let structure = "Parallels header"

    /// QEMU's parallels_probe: a whole header with either signature and version 2.
    static func probe(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= headerSize else { return false }
        let magic = Array(bytes[0 ..< 16])
        return (magic == magicOld || magic == magicExt) && LittleEndianBytes(bytes).u32(16) == version
    }

    struct Header {
        var magic: [UInt8]
        var version: UInt32
        var tracks: UInt32
        var batEntries: UInt32
        var sectors: UInt64
        var inUse: UInt32
        var dataOffset: UInt32

        init(_ raw: [UInt8]) {
            let b = LittleEndianBytes(raw)
            magic = b.slice(0, 16)
            version = b.u32(16)
            tracks = b.u32(28)
            batEntries = b.u32(32)
            sectors = b.u64(36)
            inUse = b.u32(44)
            dataOffset = b.u32(48)
        }

        var isExtended: Bool { magic == ParallelsFormat.magicExt }
        var clusterSize: UInt64 { UInt64(tracks) * ParallelsFormat.sectorSize }
        /// Sectors a BAT entry counts in: 1 in the old format, a cluster's in the new.
        var offsetMultiplier: UInt64 { isExtended ? UInt64(tracks) : 1 }
        /// The disk's sectors; the old format keeps only the low 32 bits (parallels_open).
        var diskSectors: UInt64 { isExtended ? sectors : sectors & 0xFFFF_FFFF }
        var wasClosedUncleanly: Bool { inUse == ParallelsFormat.inUseMagic }

        /// parallels_open's checks, in its order, each naming the field's offset; returns the
        /// virtual size.
        func validated(path: String) throws -> UInt64 {
            func bad(_ at: UInt64, _ reason: String, _ errno: Errno = .invalidArgument) -> ImageError {
                ImageError(path: path, offset: at, structure: ParallelsFormat.structure, reason: reason, errno: errno)
            }
            guard version == ParallelsFormat.version else { throw bad(16, "version \(version) is not 2: not a Parallels image") }
            guard magic == ParallelsFormat.magicOld || magic == ParallelsFormat.magicExt else {
                throw bad(0, "bad signature, not a Parallels image")
            }
            guard tracks != 0 else { throw bad(28, "zero sectors per cluster") }
            guard tracks <= ParallelsFormat.maxTracks else { throw bad(28, "clusters of \(tracks) sectors are too big", .fileTooLarge) }
            guard batEntries <= ParallelsFormat.maxBATEntries else {
                throw bad(32, "\(batEntries) BAT entries are more than imagemount's limit of \(ParallelsFormat.maxBATEntries)", .fileTooLarge)
            }
            let (size, overflow) = diskSectors.multipliedReportingOverflow(by: ParallelsFormat.sectorSize)
            guard !overflow, size <= UInt64(Int64.max) else { throw bad(36, "disk of \(diskSectors) sectors is too large", .fileTooLarge) }
            return size
        }
    }
}
