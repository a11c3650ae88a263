import GuestFSBlock

/// exFAT ("exfat").
///
/// Layout: Microsoft "exFAT file system specification", §3.1 Main Boot Sector: FileSystemName
/// "EXFAT   " at 3, FatOffset u32 at 80, ClusterHeapOffset u32 at 88, FirstClusterOfRootDirectory
/// u32 at 96, VolumeSerialNumber at 100, FileSystemRevision at 104, BytesPerSectorShift u8 at
/// 108, SectorsPerClusterShift u8 at 109; §7.3 Volume Label directory entry: type 0x83,
/// CharacterCount u8 at 1, VolumeLabel (11 UTF-16LE characters) at 2; the FAT holds u32 entries.
/// Checks as libblkid 2.38 superblocks/exfat.c: the name and a non-zero cluster size (blkid 2.38
/// checks neither the boot checksum nor the must-be-zero bytes; later versions do). The label is
/// the root directory's label entry, the directory followed through the FAT. blkid computes the
/// sizes as `1u << BytesPerSectorShift` and the offsets as 64-bit shifts without bounding the
/// shift counts, which C leaves undefined and x86-64 masks to the operand's width; Swift's
/// masking shift `&<<` is exactly that, and `&+`/`&-` wrap as C's unsigned arithmetic does. Tighter than blkid: at most
/// `maxEntries` entries are looked at (blkid allows 8 Mi, a FAT cycle would make it read them all).
enum ExfatProbe {
    static let maxEntries = 16384
    static let entrySize: UInt64 = 32
    static let labelEntry: UInt8 = 0x83
    static let firstDataCluster: UInt32 = 2
    static let lastDataCluster: UInt32 = 0xFFF_FFF6

    static func probe(_ r: ProbeReader) -> ProbeResult {
        guard let sb = r.bytes(0, 512), sb.has([UInt8](ascii: "EXFAT   "), at: 3) else { return .noMatch }
        let sectorShift = UInt32(sb.u8(108)), clusterShift = UInt32(sb.u8(109))
        let clusterSize = (UInt32(1) &<< sectorShift) &<< clusterShift
        guard clusterSize != 0 else { return .noMatch }
        let fatOffset = UInt64(sb.le32(80)), heapOffset = UInt64(sb.le32(88))
        func offset(ofCluster c: UInt32) -> UInt64 {
            (heapOffset &+ (UInt64(c &- firstDataCluster) &<< UInt64(clusterShift))) &<< UInt64(sectorShift)
        }
        var cluster = sb.le32(96)
        var at = offset(ofCluster: cluster)
        var label: String?
        for _ in 0 ..< maxEntries {
            guard let entry = r.bytes(at, Int(entrySize)) else { break }
            if entry.u8(0) == 0 { break }
            if entry.u8(0) == labelEntry {
                let count = min(Int(entry.u8(1)) * 2, 22)
                label = ProbeText.label(entry.slice(2, count), encoding: .utf16LE)
                break
            }
            at = at &+ entrySize
            if at % UInt64(clusterSize) == 0 {
                let fatEntry = (fatOffset &<< UInt64(sectorShift)) &+ UInt64(cluster) * 4
                guard let next = r.bytes(fatEntry, 4) else { break }
                cluster = next.le32(0)
                guard cluster >= firstDataCluster, cluster <= lastDataCluster else { break }
                at = offset(ofCluster: cluster)
            }
        }
        return .match(label: label, uuid: ProbeText.serial4(sb.slice(100, 4)))
    }
}
