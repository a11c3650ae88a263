import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

/// CRC32C as jbd2 and ext4 use it: the raw Castagnoli CRC state, with no final inversion.
///
/// jbd2's `jbd2_chksum(journal, seed, buf, len)` (Linux include/linux/jbd2.h) and ext4's
/// metadata checksums are this function; callers pass the seed (`~0` or a UUID-derived one)
/// and store the returned state as is. libext2fs exports the table-driven implementation as
/// `ext2fs_crc32c_le`, so imagemount calls that rather than carrying a second copy.
enum JournalChecksum {
    /// The CRC32C state after feeding `bytes` to `seed`.
    static func crc32c(_ seed: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return ext2fs_crc32c_le(seed, base.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    static func crc32c(_ seed: UInt32, _ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { crc32c(seed, $0) }
    }

    /// `bytes` checksummed with the 4-byte field at `fieldOffset` read as zero, the way every
    /// jbd2 and ext4 block checksum is computed ("with this field set to zero", journal.rst).
    static func crc32c(_ seed: UInt32, _ bytes: [UInt8], zeroingFieldAt fieldOffset: Int) -> UInt32 {
        precondition(fieldOffset >= 0 && fieldOffset + 4 <= bytes.count)
        return bytes.withUnsafeBytes { raw in
            var crc = crc32c(seed, UnsafeRawBufferPointer(rebasing: raw[..<fieldOffset]))
            crc = crc32c(crc, [UInt8](repeating: 0, count: 4))
            return crc32c(crc, UnsafeRawBufferPointer(rebasing: raw[(fieldOffset + 4)...]))
        }
    }
}
