import Synchronization

/// A bounded LRU cache of fixed-size metadata tables, keyed by host offset.
///
/// Like QEMU's block/qcow2-cache.c it does not know what a table holds: the cluster map keeps
/// L2 slices here, the refcount code refcount blocks, and the read path decompressed clusters.
/// Pinning is scoped: `withTable(at:_:)` pins the entry for the duration of the closure, and only
/// unpinned entries are evicted. Tables are immutable once loaded (this engine only reads), so a
/// pinned entry may be shared by any number of threads. A miss loads outside the lock; when two
/// threads miss on the same table at once both load it and the first to finish is kept.
final class Qcow2TableCache: Sendable {
    /// Fills a table-sized buffer with the table stored at a host offset.
    typealias Loader = @Sendable (_ offset: UInt64, _ into: UnsafeMutableRawBufferPointer) throws -> Void

    /// Bytes per entry: one L2 slice, one refcount block, or one cluster.
    let entryBytes: Int
    /// Most entries kept; more are held only while pinned.
    let capacity: Int
    private let loader: Loader
    private let state = Mutex(State())

    private final class Table: Sendable {
        let bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    private struct Slot {
        let table: Table
        var pins: Int
        var lastUse: UInt64
    }

    private struct State {
        var slots: [UInt64: Slot] = [:]
        var clock: UInt64 = 0
        var loads = 0
        var hits = 0
    }

    /// - Parameters:
    ///   - entryBytes: size of one table.
    ///   - capacityBytes: budget for unpinned tables; at least two entries are always kept.
    init(entryBytes: Int, capacityBytes: Int, loader: @escaping Loader) {
        precondition(entryBytes > 0)
        self.entryBytes = entryBytes
        self.capacity = max(2, capacityBytes / entryBytes)
        self.loader = loader
    }

    /// Runs `body` on the table at `offset`, loading it with the cache's loader on a miss.
    func withTable<R>(at offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withTable(at: offset, load: loader, body)
    }

    /// Runs `body` on the entry keyed `offset`, filling it with `load` on a miss.
    func withTable<R>(at offset: UInt64, load: (UInt64, UnsafeMutableRawBufferPointer) throws -> Void,
                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let table: Table
        if let hit = pin(offset) {
            table = hit
        } else {
            var bytes = [UInt8](repeating: 0, count: entryBytes)
            try bytes.withUnsafeMutableBytes { try load(offset, $0) }
            table = insertAndPin(offset, Table(bytes))
        }
        defer { unpin(offset) }
        return try table.bytes.withUnsafeBytes(body)
    }

    /// Loads and hits so far, for tests and statistics.
    var statistics: (loads: Int, hits: Int) { state.withLock { ($0.loads, $0.hits) } }

    /// Number of entries currently held.
    var count: Int { state.withLock { $0.slots.count } }

    /// Drops every unpinned entry.
    func evictAll() {
        state.withLock { s in s.slots = s.slots.filter { $0.value.pins > 0 } }
    }

    private func pin(_ offset: UInt64) -> Table? {
        state.withLock { s in
            guard var slot = s.slots[offset] else { return nil }
            s.clock += 1
            s.hits += 1
            slot.pins += 1
            slot.lastUse = s.clock
            s.slots[offset] = slot
            return slot.table
        }
    }

    private func insertAndPin(_ offset: UInt64, _ fresh: Table) -> Table {
        state.withLock { s in
            s.clock += 1
            s.loads += 1
            if var slot = s.slots[offset] {
                // Another thread loaded the same table meanwhile: share its copy.
                slot.pins += 1
                slot.lastUse = s.clock
                s.slots[offset] = slot
                return slot.table
            }
            s.slots[offset] = Slot(table: fresh, pins: 1, lastUse: s.clock)
            while s.slots.count > capacity {
                // Least recently used among the unpinned; when all are pinned, hold more for now.
                var victim: (key: UInt64, use: UInt64)?
                for (key, slot) in s.slots where slot.pins == 0 && slot.lastUse < (victim?.use ?? .max) {
                    victim = (key, slot.lastUse)
                }
                guard let victim else { break }
                s.slots[victim.key] = nil
            }
            return fresh
        }
    }

    private func unpin(_ offset: UInt64) {
        state.withLock { s in
            guard var slot = s.slots[offset] else { return }
            precondition(slot.pins > 0, "unbalanced unpin of table at \(offset)")
            slot.pins -= 1
            s.slots[offset] = slot
        }
    }
}
