import SystemPackage

/// The two headers of a VHDX opened for writing, and their updates ([MS-VHDX] "2.2.2.1 Updating
/// the Headers"; QEMU's vhdx_update_header, vhdx_update_headers and vhdx_user_visible_write).
///
/// An update rewrites the non-current copy with the next sequence number, this open's
/// FileWriteGuid, a new DataWriteGuid when asked and the given LogGuid, re-stamps its CRC-32C and
/// syncs it; that copy is then current. Every update does this twice, as QEMU does, so that both
/// copies are valid afterwards. QEMU rebuilds the non-current copy from its own fields (stale, or
/// garbage when that copy was damaged); here it is made from the current header's 4 KiB, so the
/// first update repairs a damaged copy instead of stamping a valid CRC on it.
struct VHDXHeaderWriter {
    /// The current header's 4 KiB and its slot (0: 64 KiB, 1: 128 KiB).
    private(set) var current: [UInt8]
    private(set) var slot: Int
    /// This open's FileWriteGuid ([MS-VHDX]: new before the first write of the file; QEMU's session_guid).
    let sessionGUID = VHDXFormat.randomGUID()
    /// Whether this open gave the file a new DataWriteGuid yet (QEMU's first_visible_write).
    private(set) var dataWriteGUIDChanged = false

    static let structure = "VHDX header"
    static let nullGUID = [UInt8](repeating: 0, count: 16)

    init(header: VHDXFormat.Header, slot: Int) {
        current = header.raw
        self.slot = slot
    }

    var sequenceNumber: UInt64 { LittleEndianBytes(current).u64(8) }
    var logGUID: [UInt8] { Array(current[48 ..< 64]) }

    /// Writes both copies in turn, non-current first, each synced before the next.
    mutating func update(_ file: any BlockDevice, newDataWriteGUID: Bool = false, logGUID: [UInt8]? = nil) throws {
        // One DataWriteGuid for both copies (QEMU draws one per copy; either is "new").
        let dataGUID = newDataWriteGUID ? VHDXFormat.randomGUID() : nil
        for _ in 0 ..< 2 {
            let sequence = sequenceNumber
            guard sequence < UInt64.max else {
                throw ImageError(path: file.displayName, offset: VHDXFormat.headerOffsets[slot] + 8, structure: Self.structure,
                                 reason: "the sequence number is at its largest value: not written", errno: .notSupported)
            }
            var next = current
            LittleEndianBytes.put64(sequence + 1, into: &next, at: 8)
            next.replaceSubrange(16 ..< 32, with: sessionGUID)
            if let dataGUID { next.replaceSubrange(32 ..< 48, with: dataGUID) }
            if let logGUID { next.replaceSubrange(48 ..< 64, with: logGUID) }
            LittleEndianBytes.put32(VHDXFormat.crc32c(next, checksumAt: 4), into: &next, at: 4)
            let other = 1 - slot
            try file.writeBytes(next, at: VHDXFormat.headerOffsets[other])
            try file.flush()
            current = next
            slot = other
        }
        if newDataWriteGUID { dataWriteGUIDChanged = true }
    }

    /// Before the first change a reader of the disk could see (guest data, or a BAT or log
    /// replay that changes what blocks read): a new DataWriteGuid, once per open.
    mutating func userVisibleWrite(_ file: any BlockDevice) throws {
        guard !dataWriteGUIDChanged else { return }
        try update(file, newDataWriteGUID: true)
    }
}
