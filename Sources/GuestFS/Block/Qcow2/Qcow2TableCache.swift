import Synchronization

/// A bounded LRU cache of fixed-size metadata tables, keyed by host offset.
///
/// Like QEMU's block/qcow2-cache.c it does not know what a table holds: the cluster map keeps
/// L2 slices here, the refcount code refcount blocks, and the read path decompressed clusters.
/// Pinning is scoped: `withTable(at:_:)` pins the entry for the duration of the closure, and only
/// unpinned entries are evicted. A loaded table is immutable: `update` replaces it with a changed
/// copy (readers holding the old copy are undisturbed) and marks the entry dirty. Dirty entries
/// are never evicted; `flush` writes them back, after the caches they depend on (QEMU's
/// qcow2_cache_set_dependency: L2 tables after the refcount blocks they rely on) and after a
/// barrier when `dependsOnFlush` asks for one (data before the L2 entries that point at it).
/// A miss loads outside the lock; when two threads miss on the same table at once both load it
/// and the first to finish is kept. Updates and flushes come from one writer at a time.
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
        var table: Table
        var pins: Int
        var lastUse: UInt64
        var dirty = false
    }

    private struct State {
        var slots: [UInt64: Slot] = [:]
        var clock: UInt64 = 0
        var loads = 0
        var hits = 0
        var dirtyCount = 0
        /// Whether a barrier (flush of the file) must come before this cache's next write-back.
        var dependsOnFlush = false
        /// The cache whose dirty entries must reach the disk before this one's.
        var dependency: Qcow2TableCache?
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

    /// Replaces the table at `offset` with a changed copy and marks it dirty. `fresh` starts from
    /// zeros instead of loading (QEMU's qcow2_cache_get_empty, for a table just allocated).
    func update<R>(at offset: UInt64, fresh: Bool = false, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        var bytes: [UInt8]
        if !fresh, let current = pin(offset) {
            bytes = current.bytes
            unpin(offset)
        } else if fresh {
            bytes = [UInt8](repeating: 0, count: entryBytes)
        } else {
            bytes = [UInt8](repeating: 0, count: entryBytes)
            try bytes.withUnsafeMutableBytes { try loader(offset, $0) }
        }
        let result = try bytes.withUnsafeMutableBytes(body)
        let table = Table(bytes)
        state.withLock { s in
            s.clock += 1
            if var slot = s.slots[offset] {
                if !slot.dirty { s.dirtyCount += 1 }
                slot.table = table
                slot.dirty = true
                slot.lastUse = s.clock
                s.slots[offset] = slot
            } else {
                s.slots[offset] = Slot(table: table, pins: 0, lastUse: s.clock, dirty: true)
                s.dirtyCount += 1
            }
        }
        return result
    }

    /// Forgets the entry at `offset` (a cluster that now holds something else, written directly).
    func drop(_ offset: UInt64) {
        state.withLock { s in
            guard let slot = s.slots[offset], slot.pins == 0 else { return }
            if slot.dirty { s.dirtyCount -= 1 }
            s.slots[offset] = nil
        }
    }

    /// Declares that `other`'s dirty entries must be written (and made durable) before this one's.
    func setDependency(_ other: Qcow2TableCache) {
        state.withLock { $0.dependency = other }
    }

    /// Declares that the file must be flushed before this cache writes anything back (QEMU's
    /// qcow2_cache_depends_on_flush): set when guest data was written that new entries point at.
    func setDependsOnFlush() {
        state.withLock { $0.dependsOnFlush = true }
    }

    /// Dirty entries waiting for write-back.
    var dirtyCount: Int { state.withLock { $0.dirtyCount } }

    /// Writes every dirty entry back with `write`, in offset order: first the dependency's (then
    /// `barrier`), then a `barrier` if one was asked for, then this cache's. Entries stay dirty
    /// until written, so a failed flush can be retried.
    func flush(write: (UInt64, UnsafeRawBufferPointer) throws -> Void, barrier: () throws -> Void) throws {
        let (dependency, needsBarrier) = state.withLock { ($0.dependency, $0.dependsOnFlush) }
        if let dependency, dependency.dirtyCount > 0 {
            try dependency.flush(write: write, barrier: barrier)
            try barrier()
        }
        let dirty = state.withLock { s in s.slots.filter { $0.value.dirty }.map { ($0.key, $0.value.table) } }
        if dirty.isEmpty { return }
        if needsBarrier {
            try barrier()
            state.withLock { $0.dependsOnFlush = false }
        }
        for (offset, table) in dirty.sorted(by: { $0.0 < $1.0 }) {
            try table.bytes.withUnsafeBytes { try write(offset, $0) }
            state.withLock { s in
                // Clean only if no newer update replaced the table meanwhile.
                if var slot = s.slots[offset], slot.dirty, slot.table === table {
                    slot.dirty = false
                    s.slots[offset] = slot
                    s.dirtyCount -= 1
                }
            }
        }
    }

    /// Loads and hits so far, for tests and statistics.
    var statistics: (loads: Int, hits: Int) { state.withLock { ($0.loads, $0.hits) } }

    /// Number of entries currently held.
    var count: Int { state.withLock { $0.slots.count } }

    /// Drops every unpinned entry.
    func evictAll() {
        state.withLock { s in s.slots = s.slots.filter { $0.value.pins > 0 || $0.value.dirty } }
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
                for (key, slot) in s.slots where slot.pins == 0 && !slot.dirty && slot.lastUse < (victim?.use ?? .max) {
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
