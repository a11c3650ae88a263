import GuestFSBlock
import GuestFSFilesystem

/// Changing directories: adding a name (long-name entries and the short entry, in free slots or
/// in clusters the directory grows by), removing one, rewriting a short entry in place. As the
/// kernel's fat_add_entries and vfat_remove_entries (fs/fat/dir.c, namei_vfat.c).
extension VfatFilesystem {
    /// Writes 32-byte slots starting at `slot` of `dir`, in runs of adjacent device bytes.
    func writeSlots(_ dir: inout VfatDirectory, from slot: Int, _ bytes: [UInt8], _ s: inout State) throws {
        precondition(bytes.count % 32 == 0)
        let n = bytes.count / 32
        var k = 0
        while k < n {
            var m = k + 1
            while m < n, dir.position(ofSlot: slot + m) == dir.position(ofSlot: slot + m - 1) + 32 { m += 1 }
            try device.writeBytes(Array(bytes[k * 32 ..< m * 32]), at: dir.position(ofSlot: slot + k))
            k = m
        }
        dir.raw.replaceSubrange(slot * 32 ..< (slot + n) * 32, with: bytes)
        s.directories.removeAll()
    }

    /// Writes node `id`'s short entry (or keeps it in memory for an orphan).
    func writeEntry(_ id: UInt64, _ e: VfatShortEntry, _ s: inout State) throws {
        if s.orphans[id] != nil { s.orphans[id] = e; return }
        guard let position = s.nodes.position(of: id) else { return }  // the root has no entry
        try device.writeBytes(e.encoded, at: position)
        s.directories.removeAll()
    }

    /// mtime of directory `dir` set to now, as the kernel does on every change of its names
    /// (fat_truncate_time(dir, S_CTIME|S_MTIME)); the root has no entry to hold it.
    func touchDirectory(_ dir: UInt64, _ s: inout State) throws {
        guard dir != VfatNodeTable.root else { return }
        var (e, _) = try entry(dir, &s)
        let t = VfatTime(.now, offsetMinutes: options.timeOffsetMinutes)
        e.modifyDate = t.date; e.modifyTime = t.time
        try writeEntry(dir, e, &s)
    }

    /// `count` consecutive free slots of directory `dirNode` (0x00 or 0xE5), growing it by
    /// zeroed clusters when no run is long enough. ENOSPC when the fixed root directory is
    /// full, when the directory would pass 65536 entries, or when no cluster is free.
    func freeSlots(_ count: Int, in dirNode: UInt64, _ s: inout State) throws -> (VfatDirectory, Int) {
        var dir = try directory(dirNode, &s)
        var run = 0
        for i in 0 ..< dir.slotCount {
            let b = dir.raw[i * 32]
            run = (b == 0 || b == VfatShortEntry.deletedMark) ? run + 1 : 0
            if run == count { return (dir, i + 1 - count) }
        }
        guard dir.fixedOffset == nil, !dir.clusters.isEmpty else {
            throw error(.noSpace, "directory node \(dirNode)", "the root directory is full")
        }
        let cs = Int(boot.clusterSize)
        let more = ((count - run) * 32 + cs - 1) / cs
        guard dir.raw.count + more * cs <= VfatDirectory.maxBytes else {
            throw error(.noSpace, "directory node \(dirNode)", "a directory holds at most 65536 entries")
        }
        let start = dir.slotCount - run
        let added = try s.table.allocate(more, after: dir.clusters.last, device: device.displayName)
        for c in added { try device.writeZeros(at: boot.offset(ofCluster: c), length: cs) }
        dir.clusters += added
        dir.raw += [UInt8](repeating: 0, count: more * cs)
        s.directories.removeAll()
        return (dir, start)
    }

    /// Adds the name `units` to directory `dirNode` for short entry `template` (its name is
    /// made here); returns the new short entry's device position.
    func addEntry(in dirNode: UInt64, name units: [UInt16], _ template: VfatShortEntry, _ s: inout State) throws -> UInt64 {
        let existing = try directory(dirNode, &s)
        let used = Set(existing.items.map { $0.entry.name })
        let (short, needsLong) = try VfatName.shortName(for: units) { used.contains($0) }
        var e = template
        e.name = short
        var bytes: [UInt8] = []
        if needsLong {
            for long in VfatLongEntry.entries(for: units, checksum: VfatShortEntry.checksum(short)) { bytes += long.encoded }
        }
        bytes += e.encoded
        var (dir, slot) = try freeSlots(bytes.count / 32, in: dirNode, &s)
        try writeSlots(&dir, from: slot, bytes, &s)
        return dir.position(ofSlot: slot + bytes.count / 32 - 1)
    }

    /// Marks every slot of `item` deleted (0xE5).
    func removeItem(_ item: VfatDirectory.Item, from dirNode: UInt64, _ s: inout State) throws {
        var dir = try directory(dirNode, &s)
        var bytes = Array(dir.raw[item.firstSlot * 32 ..< (item.shortSlot + 1) * 32])
        for k in stride(from: 0, to: bytes.count, by: 32) { bytes[k] = VfatShortEntry.deletedMark }
        try writeSlots(&dir, from: item.firstSlot, bytes, &s)
    }

    /// The existing item `name` of `dirNode` and its id; ENOENT when there is none.
    func existing(_ dirNode: UInt64, _ name: [UInt8], _ s: inout State) throws -> (VfatDirectory.Item, UInt64) {
        let dir = try directory(dirNode, &s)
        guard let item = dir.find(name) else {
            throw error(.noSuchFileOrDirectory, "name \(String(decoding: name, as: UTF8.self))", "no such file or directory")
        }
        return (item, id(of: item, in: dir, &s))
    }

    /// Whether a directory has nothing but "." and "..".
    func isEmptyDirectory(_ id: UInt64, _ s: inout State) throws -> Bool {
        try directory(id, &s).names.isEmpty
    }
}
