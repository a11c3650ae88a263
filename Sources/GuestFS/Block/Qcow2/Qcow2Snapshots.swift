/// One internal snapshot (qcow2 spec, "Snapshots", "Snapshot table entry").
package struct Qcow2Snapshot: Sendable, Equatable {
    /// Where the snapshot's L1 table starts, and its entry count.
    package var l1TableOffset: UInt64
    package var l1Size: UInt32
    package var id: String
    package var name: String
    package var dateSeconds: UInt32
    package var dateNanoseconds: UInt32
    /// Guest run time when the snapshot was taken.
    package var vmClockNanoseconds: UInt64
    /// Saved VM state, 0 when none (the 64-bit extra field wins over the 32-bit one).
    package var vmStateSize: UInt64
    /// Virtual disk size at the time of the snapshot (extra data bytes 48-55), when recorded.
    package var diskSize: UInt64?
    /// Instruction count for record/replay (extra data bytes 56-63), when recorded.
    package var icount: UInt64?

    /// Bytes this entry takes in the snapshot table, padding included.
    var tableEntryBytes = 0

    /// Fixed part of an entry, before extra data, ID and name.
    static let fixedSize = 40
}

extension Qcow2Snapshot {
    /// Reads the snapshot table: `count` entries from `offset` (qcow2 spec, "Snapshots").
    ///
    /// The table's size is only known once read, so it is read entry by entry, never past
    /// `Qcow2.maxSnapshotTableBytes` or the end of the file.
    static func readTable(count: UInt32, offset: UInt64, clusterSize: Int, fileSize: UInt64,
                          read: (UInt64, Int) throws -> [UInt8]) throws -> [Qcow2Snapshot] {
        guard count > 0 else { return [] }
        func bad(_ reason: String, at: UInt64) -> ImageError {
            ImageError(offset: at, structure: "snapshot table", reason: reason)
        }
        guard count <= Qcow2.maxSnapshots else {
            throw bad("\(count) snapshots, more than the limit of \(Qcow2.maxSnapshots)", at: offset)
        }
        guard offset % UInt64(clusterSize) == 0, offset >= UInt64(clusterSize) else {
            throw bad("offset 0x\(hex(offset)) is not cluster-aligned or points into the header", at: offset)
        }
        guard offset < fileSize else {
            throw bad("offset 0x\(hex(offset)) lies past the end of the file (0x\(hex(fileSize)))", at: offset)
        }
        // offset < fileSize, so neither sum below can overflow: fileSize fits the host's off_t,
        // the table limit is 64 MiB and every entry is at most a few KiB.
        let limit = min(fileSize, offset.addingReportingOverflow(UInt64(Qcow2.maxSnapshotTableBytes)).overflow
                        ? fileSize : offset + UInt64(Qcow2.maxSnapshotTableBytes))
        var snapshots: [Qcow2Snapshot] = []
        var pos = offset
        for index in 0..<Int(count) {
            guard pos + UInt64(fixedSize) <= limit else {
                throw bad("entry \(index) runs past the end of the file or the table size limit", at: pos)
            }
            let fixed = Qcow2Bytes(try read(pos, fixedSize))
            let idLength = Int(fixed.u16(12)), nameLength = Int(fixed.u16(14))
            let extraLength = Int(fixed.u32(36))
            guard extraLength <= Qcow2.maxSnapshotExtraData else {
                throw bad("entry \(index) has \(extraLength) bytes of extra data, more than \(Qcow2.maxSnapshotExtraData)", at: pos)
            }
            let variable = extraLength + idLength + nameLength
            guard pos + UInt64(fixedSize + variable) <= limit else {
                throw bad("entry \(index) runs past the end of the file or the table size limit", at: pos)
            }
            let rest = try read(pos + UInt64(fixedSize), variable)
            let extra = Qcow2Bytes(Array(rest[0..<extraLength]))
            var s = Qcow2Snapshot(
                l1TableOffset: fixed.u64(0), l1Size: fixed.u32(8),
                id: String(decoding: rest[extraLength..<(extraLength + idLength)], as: UTF8.self),
                name: String(decoding: rest[(extraLength + idLength)...], as: UTF8.self),
                dateSeconds: fixed.u32(16), dateNanoseconds: fixed.u32(20),
                vmClockNanoseconds: fixed.u64(24), vmStateSize: UInt64(fixed.u32(32)),
                diskSize: nil, icount: nil, tableEntryBytes: (fixedSize + variable + 7) & ~7)
            if extraLength >= 8 { s.vmStateSize = extra.u64(0) }
            if extraLength >= 16 { s.diskSize = extra.u64(8) }
            if extraLength >= 24 { s.icount = extra.u64(16) }
            snapshots.append(s)
            pos += UInt64((fixedSize + variable + 7) & ~7)
        }
        return snapshots
    }
}

extension Array where Element == Qcow2Snapshot {
    /// The snapshot whose ID is `idOrName`, else the one named so (QEMU's snapshot lookup order).
    package func find(_ idOrName: String) -> Qcow2Snapshot? {
        first { $0.id == idOrName } ?? first { $0.name == idOrName }
    }
}
