import GuestFSBlock
import GuestFSFilesystem
import Synchronization

/// A bounded cache of whole directories, so that looking names up in a large directory does
/// not rescan it each time (ext2fs_lookup is a linear scan that ignores the htree index).
///
/// Bounded by the total number of entries held; least recently used directories are dropped
/// first. Writers call `invalidate(_:)` for every directory they change.
final class Ext2DirectoryCache: Sendable {
    /// Entries by name. The key hashes the name's bytes in one call: `[UInt8]`'s own hashing
    /// feeds the hasher a byte at a time, and indexing a million names that way was a fifth of
    /// the server's time in a `find` (bench/million-files.sh).
    struct NameIndex: Sendable {
        struct Key: Hashable, Sendable {
            let bytes: [UInt8]
            func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
        }
        private var storage: [Key: DirEntry] = [:]
        init(minimumCapacity: Int) { storage.reserveCapacity(minimumCapacity) }
        subscript(name: [UInt8]) -> DirEntry? {
            get { storage[Key(bytes: name)] }
            set { storage[Key(bytes: name)] = newValue }
        }
        mutating func updateValue(_ entry: DirEntry, forKey name: [UInt8]) -> DirEntry? {
            storage.updateValue(entry, forKey: Key(bytes: name))
        }
        var count: Int { storage.count }
    }

    struct Index: Sendable {
        var byName: NameIndex
        /// Names in listing order once a writer changed the listing (empty while `asRead`
        /// holds it); it may hold names since removed or added twice, which `list` skips.
        var order: [[UInt8]]
        /// The logical block of the directory each name is in, when known.
        var blocks: [[UInt8]: UInt32] = [:]
        /// The listing as read, until a writer changes it: `list` is then this, with no lookups.
        var asRead: [DirEntry]?
        var list: [DirEntry] {
            if let asRead { return asRead }
            if order.count == byName.count { return order.compactMap { byName[$0] } }
            var seen = Set<[UInt8]>()
            return order.compactMap { name in seen.insert(name).inserted ? byName[name] : nil }
        }
    }

    private struct State {
        var indexes: [UInt32: Index] = [:]
        var lastUse: [UInt32: UInt64] = [:]
        var clock: UInt64 = 0
        var total = 0
    }

    private let state = Mutex(State())
    let maxEntries: Int

    init(maxEntries: Int) { self.maxEntries = maxEntries }

    func entries(of dir: UInt32) -> Index? {
        state.withLock { s in
            guard let index = s.indexes[dir] else { return nil }
            s.clock += 1
            s.lastUse[dir] = s.clock
            return index
        }
    }

    @discardableResult
    func insert(_ dir: UInt32, _ list: [DirEntry], blocks: [[UInt8]: UInt32]? = nil) -> Index {
        var byName = NameIndex(minimumCapacity: list.count)
        for entry in list { byName[entry.name] = entry }
        let unique = byName.count == list.count
        let index = Index(byName: byName, order: unique ? [] : list.map(\.name), blocks: blocks ?? [:],
                          asRead: unique ? list : nil)
        guard list.count <= maxEntries else { return index }
        state.withLock { s in
            if let old = s.indexes[dir] { s.total -= old.byName.count }
            while s.total + list.count > maxEntries, let victim = s.lastUse.min(by: { $0.value < $1.value })?.key {
                s.total -= s.indexes[victim]?.byName.count ?? 0
                s.indexes[victim] = nil
                s.lastUse[victim] = nil
            }
            s.clock += 1
            s.indexes[dir] = index
            s.lastUse[dir] = s.clock
            s.total += list.count
        }
        return index
    }

    /// Applies a change a writer just made to directory `dir` to its cached listing, if there
    /// is one, instead of dropping it (re-reading a 20 000-entry directory after each of
    /// 20 000 creates would be quadratic). `entry` nil removes `name`. New names go last.
    func update(_ dir: UInt32, name: [UInt8], entry: DirEntry?, block: UInt32? = nil) {
        state.withLock { s in
            guard s.indexes[dir] != nil else { return }
            let before = s.indexes[dir]!.byName.count
            if let asRead = s.indexes[dir]!.asRead {
                s.indexes[dir]!.order = asRead.map(\.name)
                s.indexes[dir]!.asRead = nil
            }
            if let entry {
                if s.indexes[dir]!.byName.updateValue(entry, forKey: name) == nil { s.indexes[dir]!.order.append(name) }
                if let block { s.indexes[dir]!.blocks[name] = block }
            } else {
                s.indexes[dir]!.byName[name] = nil
                s.indexes[dir]!.blocks[name] = nil
            }
            let index = s.indexes[dir]!
            s.total += index.byName.count - before
            // Keep the order list from growing without bound under create/remove churn.
            if index.order.count > 2 * index.byName.count + 64 {
                s.indexes[dir]!.order = index.list.map(\.name)
            }
        }
    }

    func invalidate(_ dir: UInt32) {
        state.withLock { s in
            if let old = s.indexes.removeValue(forKey: dir) { s.total -= old.byName.count }
            s.lastUse[dir] = nil
        }
    }
}
