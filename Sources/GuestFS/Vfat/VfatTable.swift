import GuestFSBlock
import GuestFSFilesystem

/// The file allocation table, held in memory whole (one copy: the first, or the active one when
/// FAT32 mirroring is off), with 12/16/32-bit packing, the free count and next-free hint the
/// kernel keeps (its sbi->free_clusters and prev_free), and the sectors changed since the last
/// flush, which go to every FAT copy (fatgen103 §4 "FAT", §3.3 BPB_ExtFlags).
///
/// Only the bytes that hold entries 0 ..< clusterCount + 2 are loaded, at most `maxBytes`: a
/// FAT32 volume of 64 Mi clusters (2 TiB at 32 KiB clusters) is the largest we open.
struct VfatTable: Sendable {
    static let maxBytes = 256 << 20

    let type: VfatType
    let clusterCount: UInt32
    let bytesPerSector: Int
    private(set) var bytes: [UInt8]
    /// Sector indexes (within one FAT) changed since the last flush.
    private(set) var dirtySectors = Set<Int>()
    private(set) var freeCount: UInt32 = 0
    /// Where the next search for a free cluster starts (the kernel's prev_free + 1).
    var nextFreeHint: UInt32 = 2

    /// The end-of-chain mark we write (fatgen103 §4: any value >= 0xFF8/0xFFF8/0x0FFFFFF8;
    /// mkfs.fat and the kernel write the all-ones value).
    var endOfChain: UInt32 { type == .fat12 ? 0xFFF : type == .fat16 ? 0xFFFF : 0x0FFF_FFFF }
    /// The bad-cluster mark (fatgen103 §4); it and every value above it end a chain, as the
    /// kernel's fat*_ent_get normalise them to FAT_ENT_EOF.
    var badMark: UInt32 { type == .fat12 ? 0xFF7 : type == .fat16 ? 0xFFF7 : 0x0FFF_FFF7 }

    init(device: any BlockDevice, boot: VfatBootSector) throws {
        type = boot.type
        clusterCount = boot.clusterCount
        bytesPerSector = Int(boot.bytesPerSector)
        let entries = UInt64(boot.clusterCount) + 2
        let needed = (entries * UInt64(boot.type.rawValue) + 7) / 8
        let sectors = (needed + UInt64(bytesPerSector) - 1) / UInt64(bytesPerSector)
        let length = sectors * UInt64(bytesPerSector)
        guard length <= UInt64(Self.maxBytes), length <= boot.fatBytes else {
            throw ImageError(path: device.displayName, offset: boot.fatOffset, structure: "FAT",
                             reason: "FAT of \(length) bytes is larger than this driver holds (\(Self.maxBytes))",
                             errno: .fileTooLarge)
        }
        let start = boot.fatOffset + UInt64(boot.activeFat) * boot.fatBytes
        try device.checkRange(offset: start, length: Int(length), structure: "FAT")
        bytes = try device.readBytes(at: start, count: Int(length))
        var free: UInt32 = 0
        for n in 2 ..< boot.clusterCount + 2 where self[n] == 0 { free += 1 }
        freeCount = free
    }

    /// The raw entry of cluster `n` (0 ..< clusterCount + 2; the caller checks). FAT12 packs
    /// two entries in three bytes, the odd one in the high 12 bits (fatgen103 §4.1); FAT32 entries
    /// use the low 28 bits only.
    subscript(n: UInt32) -> UInt32 {
        get {
            let i = Int(n)
            switch type {
            case .fat12:
                let off = i + i / 2
                let v = UInt32(bytes[off]) | UInt32(bytes[off + 1]) << 8
                return i & 1 == 1 ? v >> 4 : v & 0xFFF
            case .fat16:
                return UInt32(bytes[2 * i]) | UInt32(bytes[2 * i + 1]) << 8
            case .fat32:
                let o = 4 * i
                let v = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
                return v & 0x0FFF_FFFF
            }
        }
    }

    /// Sets the entry of cluster `n`, keeping the free count; FAT32's high 4 bits are kept
    /// (fatgen103 §4: "the high 4 bits … must be preserved").
    mutating func set(_ n: UInt32, _ value: UInt32) {
        precondition(n < clusterCount + 2, "FAT entry \(n) out of range")
        if n >= 2 {
            let old = self[n]
            if old == 0 && value != 0 { freeCount -= 1 }
            if old != 0 && value == 0 { freeCount += 1 }
        }
        let i = Int(n)
        switch type {
        case .fat12:
            let off = i + i / 2
            if i & 1 == 1 {
                bytes[off] = bytes[off] & 0x0F | UInt8(truncatingIfNeeded: value << 4)
                bytes[off + 1] = UInt8(truncatingIfNeeded: value >> 4)
            } else {
                bytes[off] = UInt8(truncatingIfNeeded: value)
                bytes[off + 1] = bytes[off + 1] & 0xF0 | UInt8(truncatingIfNeeded: value >> 8) & 0x0F
            }
            markDirty(off, 2)
        case .fat16:
            bytes[2 * i] = UInt8(truncatingIfNeeded: value)
            bytes[2 * i + 1] = UInt8(truncatingIfNeeded: value >> 8)
            markDirty(2 * i, 2)
        case .fat32:
            let o = 4 * i
            let v = value & 0x0FFF_FFFF | (UInt32(bytes[o + 3]) & 0xF0) << 24
            for k in 0..<4 { bytes[o + k] = UInt8(truncatingIfNeeded: v >> (8 * k)) }
            markDirty(o, 4)
        }
    }

    private mutating func markDirty(_ offset: Int, _ count: Int) {
        dirtySectors.insert(offset / bytesPerSector)
        dirtySectors.insert((offset + count - 1) / bytesPerSector)
    }

    /// Whether `n` names a data cluster.
    func isData(_ n: UInt32) -> Bool { n >= 2 && n < clusterCount + 2 }

    /// Takes `count` free clusters, searching from the hint and wrapping, links them into one
    /// chain ending in an end-of-chain mark and hangs it after `last` when given. ENOSPC, with
    /// nothing changed, when fewer are free.
    mutating func allocate(_ count: Int, after last: UInt32?, device: String) throws -> [UInt32] {
        guard count > 0 else { return [] }
        guard UInt64(count) <= UInt64(freeCount) else {
            throw ImageError(path: device, structure: "FAT", reason: "no space left: \(count) clusters wanted, \(freeCount) free",
                             errno: .noSpace)
        }
        var taken: [UInt32] = []
        taken.reserveCapacity(count)
        var n = isData(nextFreeHint) ? nextFreeHint : 2
        // One pass over the data clusters at most: the free count says enough are there.
        var scanned: UInt32 = 0
        while taken.count < count, scanned < clusterCount {
            if self[n] == 0 { taken.append(n) }
            n = n + 1 < clusterCount + 2 ? n + 1 : 2
            scanned += 1
        }
        guard taken.count == count else {
            throw ImageError(path: device, structure: "FAT", reason: "free count \(freeCount) disagrees with the table",
                             errno: .ioError)
        }
        for (k, c) in taken.enumerated() { set(c, k + 1 < taken.count ? taken[k + 1] : endOfChain) }
        if let last { set(last, taken[0]) }
        nextFreeHint = n
        return taken
    }

    /// Marks the clusters of `chain` free.
    mutating func free(_ chain: [UInt32]) {
        for c in chain where isData(c) { set(c, 0) }
    }

    /// Ends a chain at `cluster`.
    mutating func terminate(_ cluster: UInt32) { set(cluster, endOfChain) }

    /// FAT[1]'s clean-shutdown bit (fatgen103 §4.2 ClnShutBitMask: 0x8000 on FAT16,
    /// 0x08000000 on FAT32; FAT12 has none). Set means the volume was unmounted cleanly.
    var cleanBit: Bool? {
        switch type {
        case .fat12: return nil
        case .fat16: return self[1] & 0x8000 != 0
        case .fat32: return self[1] & 0x0800_0000 != 0
        }
    }

    mutating func setCleanBit(_ clean: Bool) {
        let mask: UInt32
        switch type {
        case .fat12: return
        case .fat16: mask = 0x8000
        case .fat32: mask = 0x0800_0000
        }
        set(1, clean ? self[1] | mask : self[1] & ~mask)
    }

    /// Writes the changed sectors to every FAT copy (only the active one when mirroring is off).
    mutating func flush(to device: any BlockDevice, boot: VfatBootSector) throws {
        guard !dirtySectors.isEmpty else { return }
        let copies: [UInt32] = boot.mirroringDisabled ? [boot.activeFat] : Array(0 ..< boot.fatCount)
        for sector in dirtySectors.sorted() {
            let from = sector * bytesPerSector
            let slice = bytes[from ..< min(bytes.count, from + bytesPerSector)]
            for copy in copies {
                let at = boot.fatOffset + UInt64(copy) * boot.fatBytes + UInt64(from)
                try slice.withUnsafeBytes { try device.write($0, at: at) }
            }
        }
        dirtySectors.removeAll()
    }
}
