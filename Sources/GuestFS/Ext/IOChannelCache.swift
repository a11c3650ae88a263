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
final class IOChannelCache {
    private struct Entry {
        var bytes: [UInt8]
        var tick: UInt64
    }
    private var entries: [UInt64: Entry] = [:]
    private var entrySize = 0
    private var clock: UInt64 = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Whether a read of `length` bytes is one the cache keeps: one block of 1 to 64 KiB.
    static func cacheable(_ length: Int) -> Bool {
        length >= 1024 && length <= 65_536 && length & (length - 1) == 0
    }

    /// Copies the cached block at `offset` into `buffer` when there is one of that size.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard buffer.count == entrySize, var entry = entries[offset] else { return false }
        clock += 1
        entry.tick = clock
        entries[offset] = entry
        entry.bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return true
    }

    /// Keeps a block just read from the device.
    func store(at offset: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard Self.cacheable(bytes.count) else { return }
        if bytes.count != entrySize {
            entries.removeAll(keepingCapacity: true)
            entrySize = bytes.count
        }
        if entries.count >= capacity { evictOldest() }
        clock += 1
        entries[offset] = Entry(bytes: Array(bytes), tick: clock)
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
        let size = UInt64(entrySize)
        if key >= offset && key + size <= offset + UInt64(bytes.count) {
            let start = Int(key - offset)
            entries[key]?.bytes = Array(bytes[start..<start + entrySize])
        } else {
            entries[key] = nil
        }
    }

    func removeAll() { entries.removeAll() }

    private func evictOldest() {
        let keep = capacity * 3 / 4
        let sorted = entries.sorted { $0.value.tick > $1.value.tick }
        entries = Dictionary(uniqueKeysWithValues: sorted.prefix(keep).map { ($0.key, $0.value) })
    }
}
