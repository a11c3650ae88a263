import GuestFSBlock

/// NTFS ("ntfs").
///
/// Layout: the NTFS boot sector (libyal libfsntfs, "New Technologies File System (NTFS)",
/// volume header; ntfs-3g include/ntfs-3g/bootsect.h): OEM "NTFS    " at 3, bytes per sector u16
/// at 11, sectors per cluster u8 at 13, the FAT fields that must be zero (reserved u16 at 14,
/// FATs u8 at 16, root entries u16 at 17, sectors u16 at 19, sectors per FAT u16 at 22, large
/// sectors u32 at 32), total sectors u64 at 40, $MFT cluster u64 at 48, $MFTMirr cluster u64 at
/// 56, clusters per MFT record i8 at 64 (negative: 2^-n bytes), volume serial u64 at 72. An MFT
/// record starts "FILE", attrs_offset u16 at 20, bytes_allocated u32 at 28; an attribute has
/// type u32 at 0, length u32 at 4, value length u32 at 16, value offset u16 at 20; record 3 is
/// $Volume and its attribute 0x60 is $VOLUME_NAME (UTF-16LE).
/// Checks as libblkid superblocks/ntfs.c. Tighter than blkid: an MFT record larger than
/// `maxRecordSize` is refused (blkid would try to read up to 2 GiB), and an attribute or name
/// running past the record ends the walk (blkid reads past its buffer there).
enum NtfsProbe {
    static let maxRecordSize: UInt32 = 64 << 10
    static let maxClusterSize: UInt32 = 64 << 10
    static let volumeRecord: UInt64 = 3
    static let volumeNameType: UInt32 = 0x60
    static let endType: UInt32 = 0xFFFF_FFFF

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let ns = r.bytes(0, 84), ns.has([UInt8](ascii: "NTFS    "), at: 3) else { return .noMatch }
        let sectorSize = UInt32(ns.le16(11)), clusterSectors = UInt32(ns.u8(13))
        guard (256 ... 4096).contains(sectorSize), [1, 2, 4, 8, 16, 32, 64, 128].contains(clusterSectors),
              sectorSize * clusterSectors <= maxClusterSize else { return .noMatch }
        guard ns.le16(14) == 0, ns.le16(17) == 0, ns.le16(19) == 0, ns.le16(22) == 0, ns.le32(32) == 0, ns.u8(16) == 0
        else { return .noMatch }
        let perRecord = ns.u8(64)
        if perRecord < 0xE1 || perRecord > 0xF7 {
            guard [1, 2, 4, 8, 16, 32, 64].contains(perRecord) else { return .noMatch }
        }
        let signed = Int8(bitPattern: perRecord)
        let recordSize: UInt64 = signed > 0 ? UInt64(signed) * UInt64(clusterSectors) * UInt64(sectorSize) : 1 << UInt64(-Int(signed))
        guard recordSize <= maxRecordSize else { return .noMatch }
        let clusters = ns.le64(40) / UInt64(clusterSectors)
        let mft = ns.le64(48)
        guard mft <= clusters, ns.le64(56) <= clusters else { return .noMatch }
        let size = Int(recordSize)
        var offset = mft &* UInt64(sectorSize) &* UInt64(clusterSectors)
        guard let first = r.bytes(offset, size), first.has([UInt8](ascii: "FILE"), at: 0) else { return .noMatch }
        offset = offset &+ volumeRecord &* recordSize
        guard let record = r.bytes(offset, size), record.has([UInt8](ascii: "FILE"), at: 0) else { return .noMatch }
        var label: String?
        var at = UInt64(record.le16(20))
        let allocated = UInt64(record.le32(28))
        while at < recordSize && at <= allocated {
            let a = Int(at)
            guard record.contains(a, 24) else { break }
            let length = UInt64(record.le32(a + 4)), type = record.le32(a)
            if length == 0 || type == endType { break }
            if type == volumeNameType {
                let valueAt = a + Int(record.le16(a + 20)), valueLength = Int(record.le32(a + 16))
                if record.contains(valueAt, valueLength) {
                    label = ProbeText.label(record.slice(valueAt, valueLength), encoding: .utf16LE)
                }
                break
            }
            at += length
        }
        let serial = ns.slice(72, 8)
        let uuid = serial.allSatisfy({ $0 == 0 }) ? nil : serial.reversed().map(ProbeText.hex).joined().uppercased()
        return .match(label: label, uuid: uuid)
    }
}
