import SystemPackage

/// qcow version 1 on-disk layout (QEMU's block/qcow.c, "QCowHeader"; the format has no spec of
/// its own): a 48-byte big-endian header, an L1 table of 64-bit L2 table offsets, L2 tables of
/// 64-bit cluster offsets. Bit 63 of an L2 entry marks a compressed cluster, whose compressed
/// byte count sits in the bits below it and whose offset in the rest. Decoding and checks only.
enum Qcow1Format {
    static let headerSize = 48
    /// "QFI\xfb", shared with qcow2; the version tells them apart.
    static let magic: UInt32 = 0x5146_49FB
    static let version: UInt32 = 1
    /// QCOW_CRYPT_NONE / QCOW_CRYPT_AES.
    static let cryptNone: UInt32 = 0
    static let cryptAES: UInt32 = 1
    /// QCOW_OFLAG_COMPRESSED.
    static let compressedFlag: UInt64 = 1 << 63
    /// qcow_open's limits: 512 B to 64 KiB clusters and L2 tables.
    static let clusterBits: ClosedRange<UInt8> = 9 ... 16
    static let l2Bits: ClosedRange<UInt8> = 6 ... 13
    /// QEMU's limit on the backing file name (qcow_open: "Backing file name too long").
    static let maxBackingNameBytes: UInt32 = 1023
    /// Most L1 entries imagemount keeps in memory (32 MiB); QEMU's own bound is INT_MAX / 8.
    static let maxL1Entries: UInt64 = 4 << 20

    static let structure = "qcow header"

    /// QEMU's qcow_probe: a whole header with the magic and version 1 (qcow2_probe takes 2 and up).
    static func probe(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= headerSize else { return false }
        let b = BigEndianBytes(bytes)
        return b.u32(0) == magic && b.u32(4) == version
    }

    struct Header {
        var magic: UInt32
        var version: UInt32
        var backingFileOffset: UInt64
        var backingFileSize: UInt32
        var size: UInt64
        var clusterBits: UInt8
        var l2Bits: UInt8
        var cryptMethod: UInt32
        var l1TableOffset: UInt64

        init(_ raw: [UInt8]) {
            let b = BigEndianBytes(raw)
            magic = b.u32(0)
            version = b.u32(4)
            backingFileOffset = b.u64(8)
            backingFileSize = b.u32(16)
            size = b.u64(24)
            clusterBits = b.u8(32)
            l2Bits = b.u8(33)
            cryptMethod = b.u32(36)
            l1TableOffset = b.u64(40)
        }

        var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
        var l2Entries: Int { 1 << Int(l2Bits) }
        /// The virtual size QEMU uses: whole sectors of the header's size (total_sectors = size / 512).
        var virtualSize: UInt64 { size / 512 * 512 }

        /// qcow_open's checks, in its order, each naming the field's offset; returns the L1 entry count.
        func validated(path: String) throws -> Int {
            func bad(_ at: UInt64, _ reason: String, _ errno: Errno = .invalidArgument) -> ImageError {
                ImageError(path: path, offset: at, structure: Qcow1Format.structure, reason: reason, errno: errno)
            }
            guard magic == Qcow1Format.magic else { throw bad(0, "bad magic, not a qcow image") }
            guard version == Qcow1Format.version else { throw bad(4, "QCOW version \(version) is not 1", .notSupported) }
            guard size > 1 else { throw bad(24, "image size \(size) is too small (must be at least 2 bytes)") }
            guard Qcow1Format.clusterBits.contains(clusterBits) else {
                throw bad(32, "cluster_bits \(clusterBits): cluster size must be between 512 and 64k")
            }
            guard Qcow1Format.l2Bits.contains(l2Bits) else {
                throw bad(33, "l2_bits \(l2Bits): L2 table size must be between 512 and 64k")
            }
            guard cryptMethod <= Qcow1Format.cryptAES else { throw bad(36, "invalid encryption method \(cryptMethod)") }
            // Bytes one L1 entry maps: 2^(cluster_bits + l2_bits), at most 2^29.
            let shift = UInt64(clusterBits) + UInt64(l2Bits)
            let span = UInt64(1) << shift
            guard size <= UInt64.max - span else { throw bad(24, "image size \(size) is too large") }
            let entries = (size + span - 1) >> shift
            guard entries <= Qcow1Format.maxL1Entries else {
                throw bad(24, "image size \(size) needs \(entries) L1 entries, more than imagemount's limit of \(Qcow1Format.maxL1Entries)",
                          .fileTooLarge)
            }
            if backingFileOffset != 0, backingFileSize > Qcow1Format.maxBackingNameBytes {
                throw bad(16, "backing file name of \(backingFileSize) bytes is too long (QEMU's limit is \(Qcow1Format.maxBackingNameBytes))")
            }
            return Int(entries)
        }
    }
}
