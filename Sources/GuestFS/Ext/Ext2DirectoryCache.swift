import Synchronization

/// A bounded cache of whole directories, so that looking names up in a large directory does
/// not rescan it each time (ext2fs_lookup is a linear scan that ignores the htree index).
///
/// Bounded by the total number of entries held; least recently used directories are dropped
/// first. Writers call `invalidate(_:)` for every directory they change.
final class Ext2DirectoryCache: Sendable {
    struct Index: Sendable {
        let list: [DirEntry]
        let byName: [[UInt8]: DirEntry]
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
    func insert(_ dir: UInt32, _ list: [DirEntry]) -> Index {
        var byName: [[UInt8]: DirEntry] = [:]
        byName.reserveCapacity(list.count)
        for entry in list { byName[entry.name] = entry }
        let index = Index(list: list, byName: byName)
        guard list.count <= maxEntries else { return index }
        state.withLock { s in
            if let old = s.indexes[dir] { s.total -= old.list.count }
            while s.total + list.count > maxEntries, let victim = s.lastUse.min(by: { $0.value < $1.value })?.key {
                s.total -= s.indexes[victim]?.list.count ?? 0
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

    func invalidate(_ dir: UInt32) {
        state.withLock { s in
            if let old = s.indexes.removeValue(forKey: dir) { s.total -= old.list.count }
            s.lastUse[dir] = nil
        }
    }
}
