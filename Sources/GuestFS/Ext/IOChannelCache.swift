import GuestFSBlock
import GuestFSFilesystem

/// A small write-through cache of single blocks libext2fs reads through our io_manager: inode
/// table blocks, bitmaps, directory and extent blocks are read again and again (each inode
/// update is a read-modify-write of its table block, each `ext2fs_link` scans the directory).
/// libext2fs's own unix_io keeps such a cache; our io_manager is the place for ours.
///
/// Write-through: every write goes to the device first and then updates (or drops) the cached
/// blocks it covers, so the device always holds what the cache holds and reads that bypass the
/// cache (multi-block reads, `Ext2File`'s direct data reads) see the same bytes. One entry size at
/// a time (the filesystem's block size once it is open); another size clears the cache.
/// Used under the filesystem lock only (libext2fs is only called under it).
///
/// The blocks live in one slab of `capacity` slots, allocated when the entry size is known:
/// an array per block made glibc grow the worker thread's malloc arena a page at a time, one
/// mprotect(2) per block cached (about 750 syscalls in a cold walk of 10 000 files, each paying
/// the sandbox's seccomp and Landlock entry cost); the slab's untouched pages cost no memory.
final class IOChannelCache {
    private struct Entry {
        var slot: Int
        var tick: UInt64
    }
    private var entries: [UInt64: Entry] = [:]
    private var entrySize = 0
    private var clock: UInt64 = 0
    /// `capacity` slots of `entrySize` bytes; `freeSlots` are the ones no entry holds.
    private var slab: UnsafeMutableRawBufferPointer?
    private var freeSlots: [Int] = []
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    deinit { slab?.deallocate() }

    /// Whether a read of `length` bytes is one the cache keeps: one block of 1 to 64 KiB.
    static func cacheable(_ length: Int) -> Bool {
        length >= 1024 && length <= 65_536 && length & (length - 1) == 0
    }

    private func bytes(of slot: Int) -> UnsafeMutableRawBufferPointer {
        // A slot exists only once the slab does (store allocates it before handing out slots).
        UnsafeMutableRawBufferPointer(rebasing: slab![(slot * entrySize)..<((slot + 1) * entrySize)])
    }

    /// Whether a block of `size` bytes at `offset` is cached.
    func contains(_ offset: UInt64, size: Int) -> Bool { size == entrySize && entries[offset] != nil }

    /// Copies the cached block at `offset` into `buffer` when there is one of that size.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard buffer.count == entrySize, let entry = entries[offset] else { return false }
        clock += 1
        entries[offset]?.tick = clock
        buffer.copyMemory(from: UnsafeRawBufferPointer(bytes(of: entry.slot)))
        return true
    }

    /// Keeps a block just read from the device.
    func store(at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard Self.cacheable(bytes.count) else { return }
        if bytes.count != entrySize {
            entries.removeAll(keepingCapacity: true)
            slab?.deallocate()
            entrySize = bytes.count
            slab = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity * entrySize, alignment: 4096)
            freeSlots = Array((0..<capacity).reversed())
        }
        clock += 1
        if let existing = entries[offset] {
            entries[offset]?.tick = clock
            self.bytes(of: existing.slot).copyMemory(from: bytes)
            return
        }
        if freeSlots.isEmpty { evictOldest() }
        guard let slot = freeSlots.popLast() else { return }
        self.bytes(of: slot).copyMemory(from: bytes)
        entries[offset] = Entry(slot: slot, tick: clock)
    }

    /// A write of `bytes` at `offset` reached the device: cached blocks it covers exactly are
    /// updated, blocks it covers in part are dropped.
    func wrote(at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard entrySize > 0, !entries.isEmpty, bytes.count > 0 else { return }
        let size = UInt64(entrySize)
        let end = offset + UInt64(bytes.count)
        // A write larger than the whole cache: checking what it covers, entry by entry, is cheaper.
        if UInt64(bytes.count) / size > UInt64(entries.count) {
            for key in entries.keys where key < end && key + size > offset { update(key, offset, bytes) }
            return
        }
        var key = offset - offset % size
        while key < end {
            if entries[key] != nil { update(key, offset, bytes) }
            key += size
        }
    }

    private func update(_ key: UInt64, _ offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard let entry = entries[key] else { return }
        let size = UInt64(entrySize)
        if key >= offset && key + size <= offset + UInt64(bytes.count) {
            let start = Int(key - offset)
            self.bytes(of: entry.slot).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<start + entrySize]))
        } else {
            entries[key] = nil
            freeSlots.append(entry.slot)
        }
    }

    func removeAll() {
        for entry in entries.values { freeSlots.append(entry.slot) }
        entries.removeAll()
    }

    /// Keeps the most recently used three quarters.
    private func evictOldest() {
        let keep = capacity * 3 / 4
        let sorted = entries.sorted { $0.value.tick > $1.value.tick }
        for (key, entry) in sorted.dropFirst(keep) {
            entries[key] = nil
            freeSlots.append(entry.slot)
        }
    }
}
