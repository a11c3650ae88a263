import GuestFSBlock
import GuestFSFilesystem

/// One directory read whole: its raw slots, where each slot is on the device, and the names
/// in it with long names put together as the kernel's fat_parse_long does (fs/fat/dir.c).
///
/// Long-name entries are used only when they form a complete, consistent run: the first has
/// the 0x40 "last" flag and an ordinal of 1–20, each next one the ordinal one lower with the same
/// checksum, and the short entry after them is live, not a volume label, and matches the
/// checksum (fatgen103 §7.2). A run broken part way restarts at the entry that broke it; a run
/// whose checksum does not match leaves the short name to stand alone; orphaned long-name
/// entries are skipped. Free entries (0xE5, and 0x00, which the kernel also reads past) and
/// volume labels are not names.
struct VfatDirectory: Sendable {
    /// The kernel's FAT_MAX_DIR_SIZE: a directory holds at most 65536 entries (2 MiB); we read
    /// no further and never grow one past it.
    static let maxBytes = 1 << 21

    struct Item: Sendable {
        /// The name shown: the long name when there is one, else the short name.
        var name: [UInt8]
        /// The slot of the first long-name entry, or `shortSlot` when there is none.
        var firstSlot: Int
        var shortSlot: Int
        var entry: VfatShortEntry
    }

    /// The directory's first cluster; 0 for the fixed root directory of FAT12/16.
    let firstCluster: UInt32
    /// The clusters it occupies (empty for the fixed root).
    var clusters: [UInt32]
    /// Where the fixed root directory starts.
    let fixedOffset: UInt64?
    let clusterSize: Int
    let dataOffset: UInt64
    var raw: [UInt8]
    private(set) var items: [Item] = []
    /// Case-folded long and short names → index in `items` (the first item wins, as the
    /// kernel's search stops at the first match).
    private var index: [[UInt8]: Int] = [:]
    /// The volume-label entry's name (root directory only).
    private(set) var volumeLabel: [UInt8]?

    var slotCount: Int { raw.count / 32 }

    init(firstCluster: UInt32, clusters: [UInt32], fixedOffset: UInt64?, clusterSize: Int, dataOffset: UInt64,
         raw: [UInt8], fat32: Bool) {
        self.firstCluster = firstCluster
        self.clusters = clusters
        self.fixedOffset = fixedOffset
        self.clusterSize = clusterSize
        self.dataOffset = dataOffset
        self.raw = raw
        parse(fat32: fat32)
    }

    /// The device offset of slot `i`.
    func position(ofSlot i: Int) -> UInt64 {
        let byte = i * 32
        if let fixedOffset { return fixedOffset + UInt64(byte) }
        let cluster = clusters[byte / clusterSize]
        return dataOffset + UInt64(cluster - 2) * UInt64(clusterSize) + UInt64(byte % clusterSize)
    }

    func shortEntry(at slot: Int, fat32: Bool) -> VfatShortEntry { VfatShortEntry(raw, at: slot * 32, fat32: fat32) }

    /// Items other than "." and "..".
    var names: [Item] { items.filter { !$0.entry.isDot } }

    /// The item called `name`: case folded as the kernel's vfat lookups are, trailing dots
    /// ignored (vfat_striptail_len), long name or short name.
    func find(_ name: [UInt8]) -> Item? {
        var wanted = name[...]
        while wanted.count > 1, wanted.last == 0x2E { wanted.removeLast() }
        let folded = VfatName.folded(Array(wanted))
        guard folded != [0x2E], folded != [0x2E, 0x2E], let i = index[folded] else { return nil }
        return items[i]
    }

    mutating func parse(fat32: Bool) {
        items = []
        index = [:]
        volumeLabel = nil
        let count = slotCount
        var i = 0
        // Each pass of the loop consumes at least one slot.
        outer: while i < count {
            let off = i * 32
            let first = raw[off], attr = raw[off + 11]
            if first == VfatShortEntry.deletedMark { i += 1; continue }
            if attr != VfatShortEntry.longName {
                if first == 0 { i += 1; continue }
                if attr & VfatShortEntry.volumeID != 0 {
                    if volumeLabel == nil { volumeLabel = Array(raw[off ..< off + 11]) }
                    i += 1; continue
                }
                let entry = VfatShortEntry(raw, at: off, fat32: fat32)
                let short = entry.displayName
                add(short, short: short, first: i, short: i, entry)
                i += 1; continue
            }
            // A long-name run (fat_parse_long).
            let ordinal = raw[off]
            let parts = Int(ordinal & ~VfatLongEntry.lastFlag)
            guard ordinal & VfatLongEntry.lastFlag != 0, parts >= 1, parts <= 20 else { i += 1; continue }
            let checksum = raw[off + 13]
            var units = [UInt16](repeating: 0, count: parts * 13 + 1)
            var j = i
            var part = parts
            while true {
                part -= 1
                let long = VfatLongEntry(raw, at: j * 32)
                units.replaceSubrange(part * 13 ..< part * 13 + 13, with: long.units)
                j += 1
                if j >= count { break outer }
                if part == 0 { break }
                let o = j * 32
                if raw[o + 11] != VfatShortEntry.longName { i = j; continue outer }
                if Int(raw[o] & ~VfatLongEntry.lastFlag) != part || raw[o + 13] != checksum { i = j; continue outer }
            }
            let o = j * 32
            if raw[o] == VfatShortEntry.deletedMark { i = j + 1; continue }
            if raw[o + 11] == VfatShortEntry.longName { i = j; continue }
            if raw[o] == 0 || raw[o + 11] & VfatShortEntry.volumeID != 0 { i = j + 1; continue }
            let entry = VfatShortEntry(raw, at: o, fat32: fat32)
            let short = entry.displayName
            if VfatShortEntry.checksum(entry.name) == checksum {
                let end = units.firstIndex(of: 0) ?? units.count
                let long = Array(String(decoding: units[..<end], as: UTF16.self).utf8)
                add(long.isEmpty ? short : long, short: short, first: i, short: j, entry)
            } else {
                add(short, short: short, first: j, short: j, entry)
            }
            i = j + 1
        }
    }

    /// Keeps an item unless its name could not be a name (damage): empty, with a slash or a NUL.
    private mutating func add(_ name: [UInt8], short display: [UInt8], first: Int, short: Int, _ entry: VfatShortEntry) {
        if !entry.isDot {
            guard !name.isEmpty, !name.contains(0x2F), !name.contains(0), name != [0x2E], name != [0x2E, 0x2E] else { return }
            for key in [VfatName.folded(name), VfatName.folded(display)] where index[key] == nil { index[key] = items.count }
        }
        items.append(Item(name: name, firstSlot: first, shortSlot: short, entry: entry))
    }
}
