import GuestFSBlock

/// The blocks libext2fs writes during one write operation, held back and written out once at
/// its end (Ext2Filesystem+Writing.swift, `withWriteHandle`), in the order of each block's last
/// write, with contiguous runs joined into one device write.
///
/// Why: libext2fs writes a file a block at a time and, for each new block, the inode's table
/// block again (the extent root lives in the inode) two or three times: `strace` counted 1 047
/// pwrites for a 1 MiB copy-in, 4.4 per data block, 232 000 for bench/rw.sh's 200 MB tree. The
/// same bytes reach the device once per operation now.
///
/// Why the last-write order: a block's final contents reach the device at the point of its
/// last write in libext2fs's sequence, so whatever libext2fs wrote after another block's final
/// contents still reaches the device after them: new data before the inode that points at it,
/// a directory entry after the blocks it names. Intermediate contents never reach the device;
/// a crash part way is caught as before (the superblock is marked not clean for the whole
/// writing session).
///
/// Only whole blocks of the gather unit (the filesystem's block size) that lie on the device are
/// held; any other write (the superblock's byte writes, or an offset past the device, which the
/// io_manager shim may have wrapped from a hostile block number) first writes out what is held,
/// then goes to the device, which refuses what is out of range. So every held block ends on the
/// device, and no sum of a held offset and a length can overflow.
/// At most `capacity` blocks are held: one more writes everything out first. Used under the
/// filesystem lock only, like IOChannelCache.
final class IOWriteGather {
    private struct Held {
        var slot: Int
        var sequence: UInt64
    }
    private(set) var active = false
    private var unit = 0
    /// The device's size: held blocks end at or before it.
    private var limit: UInt64 = 0
    private var held: [UInt64: Held] = [:]
    private var sequence: UInt64 = 0
    private var slab: UnsafeMutableRawBufferPointer?
    private var freeSlots: [Int] = []
    /// Where a run is put together before its device write (allocated with the slab, kept:
    /// a fresh 1 MiB buffer per operation was an mmap, 256 page faults and a munmap each).
    private var staging: UnsafeMutableRawBufferPointer?
    let capacity: Int
    /// Bytes joined into one device write at most.
    static let runBytes = 1 << 20

    init(capacity: Int) { self.capacity = max(1, capacity) }

    deinit {
        slab?.deallocate()
        staging?.deallocate()
    }

    var isEmpty: Bool { held.isEmpty }

    /// Starts holding writes of `unit`-byte blocks (1 to 64 KiB, a power of two) that end at or
    /// before `limit`, the device's size.
    func begin(unit: Int, limit: UInt64) {
        guard IOChannelCache.cacheable(unit) else { return }
        if unit != self.unit {
            // Nothing is held between operations; if something were, keep the old unit.
            guard held.isEmpty else { return }
            slab?.deallocate()
            slab = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity * unit, alignment: 4096)
            staging?.deallocate()
            staging = UnsafeMutableRawBufferPointer.allocate(byteCount: max(Self.runBytes, unit), alignment: 4096)
            freeSlots = Array((0..<capacity).reversed())
            self.unit = unit
        }
        self.limit = limit
        active = true
    }

    /// Stops holding new writes; what is held stays until `drain`.
    func end() { active = false }

    private func bytes(of slot: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: slab![(slot * unit)..<((slot + 1) * unit)])
    }

    /// Whether a write of `length` bytes at `offset` is one to hold: whole blocks, aligned, on
    /// the device.
    func holds(offset: UInt64, length: Int) -> Bool {
        active && unit > 0 && length > 0 && length % unit == 0 && offset % UInt64(unit) == 0
            && UInt64(length) <= limit && offset <= limit - UInt64(length)
    }

    /// Holds the blocks of `bytes` (a write `holds` accepted); false when there is no room, so
    /// the caller writes out what is held and tries again.
    func hold(at offset: UInt64, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let blocks = bytes.count / unit
        var fresh = 0
        for b in 0..<blocks where held[offset + UInt64(b * unit)] == nil { fresh += 1 }
        guard fresh <= freeSlots.count else { return false }
        for b in 0..<blocks {
            let key = offset + UInt64(b * unit)
            sequence += 1
            let slot: Int
            if let existing = held[key] { slot = existing.slot } else { slot = freeSlots.removeLast() }
            held[key] = Held(slot: slot, sequence: sequence)
            self.bytes(of: slot).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[(b * unit)..<((b + 1) * unit)]))
        }
        return true
    }

    /// Lays the held blocks that fall in `[offset, offset + buffer.count)` over `buffer` (just
    /// read from the device, or from the read cache): a read sees what libext2fs last wrote.
    func overlay(at offset: UInt64, _ buffer: UnsafeMutableRawBufferPointer) {
        guard !held.isEmpty, unit > 0, buffer.count > 0 else { return }
        let size = UInt64(unit)
        let end = offset + UInt64(buffer.count)
        func lay(_ key: UInt64, _ entry: Held) {
            // The part of block `key` inside the buffer.
            let lo = max(key, offset), hi = min(key + size, end)
            guard lo < hi else { return }
            let source = UnsafeRawBufferPointer(bytes(of: entry.slot))[Int(lo - key)..<Int(hi - key)]
            UnsafeMutableRawBufferPointer(rebasing: buffer[Int(lo - offset)..<Int(hi - offset)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: source))
        }
        if UInt64(buffer.count) / size > UInt64(held.count) {
            for (key, entry) in held where key < end && key + size > offset { lay(key, entry) }
        } else {
            var key = offset - offset % size
            while key < end {
                if let entry = held[key] { lay(key, entry) }
                key += size
            }
        }
    }

    /// Writes the held blocks to `device` in the order of their last write, joining blocks that
    /// follow each other both in that order and on the device, and forgets them. On an error
    /// the rest is forgotten too (what reached the device is unknown) and the error is thrown.
    func drain(to device: any BlockDevice) throws {
        guard !held.isEmpty, let staging else { return }
        let ordered = held.sorted { $0.value.sequence < $1.value.sequence }
        defer {
            for (_, entry) in ordered { freeSlots.append(entry.slot) }
            held.removeAll(keepingCapacity: true)
        }
        var start: UInt64 = 0, filled = 0
        func writeRun() throws {
            guard filled > 0 else { return }
            try device.write(UnsafeRawBufferPointer(rebasing: staging[0..<filled]), at: start)
            filled = 0
        }
        for (key, entry) in ordered {
            if filled > 0, key != start + UInt64(filled) || filled + unit > staging.count { try writeRun() }
            if filled == 0 { start = key }
            UnsafeMutableRawBufferPointer(rebasing: staging[filled..<(filled + unit)]).copyMemory(from: UnsafeRawBufferPointer(bytes(of: entry.slot)))
            filled += unit
        }
        try writeRun()
    }
}
