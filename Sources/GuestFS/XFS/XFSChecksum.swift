import GuestFSBlock
import GuestFSFilesystem

/// CRC32C (Castagnoli) as v5 XFS stamps every metadata block with it.
///
/// xfs_cksum.h: the checksum covers the whole buffer with the 4-byte CRC field taken as zero,
/// starting from the seed ~0 (XFS_CRC_SEED), and the stored value is the complement of the
/// running CRC, written little-endian (`xfs_end_cksum`). Table-driven, slicing by 8: metadata
/// only passes through here, so the ~1.5 GB/s of portable Swift is far from the bottleneck and
/// needs no C shim for the SSE4.2 instruction.
enum XFSChecksum {
    /// Reflected polynomial 0x1EDC6F41 (RFC 3720 §B.4).
    private static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0 ..< 256 {
            var c = UInt32(i)
            for _ in 0 ..< 8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0 ..< 256 {
            for k in 1 ..< 8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    /// Raw CRC32C update (no pre/post inversion).
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = crc
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { t in
            let t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3], t4 = t[4], t5 = t[5], t6 = t[6], t7 = t[7]
            while n - i >= 8 {
                let lo = c ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                let hi = UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24
                c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                    ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = (c >> 8) ^ t0[Int((c ^ UInt32(bytes[i])) & 0xFF)]
                i += 1
            }
        }
        return c
    }

    /// The value XFS stores for `buffer` whose CRC field is at `crcOffset` (the field's current
    /// contents are ignored, as xfs_start_cksum_safe does).
    static func compute(_ buffer: [UInt8], crcOffset: Int) -> UInt32 {
        precondition(crcOffset >= 0 && crcOffset + 4 <= buffer.count)
        return buffer.withUnsafeBytes { raw in
            var c: UInt32 = 0xFFFF_FFFF
            c = update(c, UnsafeRawBufferPointer(rebasing: raw[0 ..< crcOffset]))
            let zero: [UInt8] = [0, 0, 0, 0]
            c = zero.withUnsafeBytes { update(c, $0) }
            c = update(c, UnsafeRawBufferPointer(rebasing: raw[(crcOffset + 4)...]))
            return ~c
        }
    }

    /// Whether the little-endian CRC stored at `crcOffset` matches the buffer (xfs_verify_cksum).
    /// A buffer too short to hold the field does not verify.
    static func verify(_ buffer: [UInt8], crcOffset: Int) -> Bool {
        guard crcOffset >= 0, crcOffset <= buffer.count - 4 else { return false }
        let stored = UInt32(buffer[crcOffset]) | UInt32(buffer[crcOffset + 1]) << 8
            | UInt32(buffer[crcOffset + 2]) << 16 | UInt32(buffer[crcOffset + 3]) << 24
        return stored == compute(buffer, crcOffset: crcOffset)
    }
}
