import GuestFSBlock

/// The sizes an NTFS boot sector declares, checked before libntfs-3g sees the volume
/// (ntfs-3g layout.h `NTFS_BOOT_SECTOR`): bytes per sector at 0x0B, sectors per cluster at 0x0D
/// (above 0x80: 2^(256 - n)), clusters per MFT record at 0x40 and per index record at 0x44, each
/// a signed byte, negative for 2^-n bytes.
///
/// Why: libntfs-3g 2022.10 takes those sizes as they are and allocates an MFT record buffer of
/// that size while mounting (ntfs_volume_startup → ntfs_mft_load), so one byte of a hostile boot
/// sector (0xE1 at 0x40: 2^31-byte records) made it malloc 2 GiB (found by `fuzz.sh ntfs`,
/// fuzz/crashers/ntfs/oom-08a3…). Windows formats 1 KiB or 4 KiB records and index records of
/// 4 KiB, and clusters of at most 2 MiB; anything past the bounds below is refused in one line.
enum NTFSBootSector {
    /// The largest MFT or index record accepted (Linux's ntfs3 accepts at most 4 KiB).
    static let maxRecordBytes: UInt64 = 64 << 10
    /// The largest cluster Windows formats (2 MiB).
    static let maxClusterBytes: UInt64 = 2 << 20

    /// Throws when the boot sector at the start of `device` is an NTFS one whose sizes are out
    /// of bounds; anything else (not NTFS at all, unreadable) is left to libntfs-3g to report.
    static func check(_ device: any BlockDevice) throws {
        guard device.size >= 512, let bytes = try? device.readBytes(at: 0, count: 512),
              Array(bytes[3 ..< 11]) == Array("NTFS    ".utf8) else { return }
        func refuse(_ at: UInt64, _ reason: String) -> ImageError {
            ImageError(path: device.displayName, offset: at, structure: "NTFS boot sector", reason: reason, errno: .ioError)
        }
        let sectorBytes = UInt64(bytes[0x0B]) | UInt64(bytes[0x0C]) << 8
        guard sectorBytes >= 256, sectorBytes <= 4096, sectorBytes & (sectorBytes - 1) == 0 else {
            throw refuse(0x0B, "\(sectorBytes) bytes per sector (256 to 4096, a power of two)")
        }
        let perCluster = bytes[0x0D]
        let sectors: UInt64 = perCluster > 0x80 ? (256 - UInt64(perCluster) < 32 ? 1 << (256 - UInt64(perCluster)) : 1 << 32) : UInt64(perCluster)
        let cluster = sectors * sectorBytes
        guard sectors > 0, cluster <= maxClusterBytes else {
            throw refuse(0x0D, "clusters of \(cluster) bytes (at most \(maxClusterBytes))")
        }
        for (at, what) in [(0x40, "MFT record"), (0x44, "index record")] {
            let value = Int8(bitPattern: bytes[at])
            // 2^-n for negative n (n up to 128: kept below 2^32 here), else n clusters.
            let size: UInt64 = value < 0 ? (-Int(value) < 32 ? 1 << UInt64(-Int(value)) : 1 << 32) : UInt64(value) * cluster
            guard size > 0, size <= maxRecordBytes else {
                throw refuse(UInt64(at), "\(what)s of \(size) bytes (at most \(maxRecordBytes))")
            }
        }
    }
}
