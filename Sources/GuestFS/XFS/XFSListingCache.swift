import GuestFSBlock
import GuestFSFilesystem
import Synchronization

/// Directory listings recently read whole, by directory inode: name → inode. A readdirplus of
/// a directory looks up every name it lists, and each hash lookup reads and verifies the
/// leaf and a data block again; a listing just decoded answers those from memory instead.
/// The filesystem never changes under a read-only open, so an entry never goes stale.
/// Bounded by the number of names held (about 100 bytes each), oldest listing evicted first.
final class XFSListingCache: Sendable {
    static let defaultMaxNames = 131_072
    let maxNames: Int
    private let state = Mutex<(listings: [UInt64: [[UInt8]: UInt64]], order: [UInt64], names: Int)>(([:], [], 0))

    init(maxNames: Int = XFSListingCache.defaultMaxNames) { self.maxNames = maxNames }

    /// The listing of `dir` when held: `.some(inode)` or `.some(nil)` (not in the directory).
    func lookup(_ dir: UInt64, _ name: [UInt8]) -> UInt64?? {
        state.withLock { s in s.listings[dir].map { $0[name] } }
    }

    /// Keeps the listing of `dir` (skipped when it alone exceeds the bound).
    func store(_ dir: UInt64, _ entries: [DirectoryEntry]) {
        guard entries.count <= maxNames else { return }
        var map: [[UInt8]: UInt64] = [:]
        map.reserveCapacity(entries.count)
        for e in entries { map[e.name] = e.node }
        state.withLock { s in
            if let old = s.listings.removeValue(forKey: dir) {
                s.names -= old.count
                s.order.removeAll { $0 == dir }
            }
            while s.names + map.count > maxNames, !s.order.isEmpty {
                let evicted = s.order.removeFirst()
                s.names -= s.listings.removeValue(forKey: evicted)?.count ?? 0
            }
            s.listings[dir] = map
            s.order.append(dir)
            s.names += map.count
        }
    }

    var nameCount: Int { state.withLock { $0.names } }
}
