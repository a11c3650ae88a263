import GuestFSBlock

/// The checksum LVM2 puts in its label header, its metadata-area header and next to each copy of
/// the metadata text (lvm2 `lib/misc/crc.c`, `calc_crc`; seed `INITIAL_CRC` in `lib/misc/crc.h`).
///
/// It is the reflected CRC-32 polynomial 0xEDB88320 that zlib uses, but seeded with 0xf597a6cf
/// and with no final inversion, so zlib's `crc32` does not give it. lvm2 computes it a nibble or
/// a byte at a time; the byte table below gives the same value.
enum LVMChecksum {
    /// `INITIAL_CRC` (lvm2 `lib/misc/crc.h`).
    static let initial: UInt32 = 0xf597_a6cf

    /// The byte-at-a-time table of the reflected polynomial 0xEDB88320.
    private static let table: [UInt32] = (0 ..< 256).map { index in
        var value = UInt32(index)
        for _ in 0 ..< 8 {
            value = value & 1 != 0 ? (value >> 1) ^ 0xedb8_8320 : value >> 1
        }
        return value
    }

    /// `calc_crc(initial, bytes, count)`: continues a checksum over `bytes`.
    static func update(_ crc: UInt32, _ bytes: some Collection<UInt8>) -> UInt32 {
        var crc = crc
        for byte in bytes {
            crc = (crc >> 8) ^ table[Int((crc ^ UInt32(byte)) & 0xff)]
        }
        return crc
    }

    /// The checksum of `bytes` from the LVM seed.
    static func compute(_ bytes: some Collection<UInt8>) -> UInt32 { update(initial, bytes) }
}
