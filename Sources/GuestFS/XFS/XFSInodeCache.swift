import GuestFSBlock
import GuestFSFilesystem
import Synchronization

/// Decoded inodes by number, bounded: at most `capacity` entries (an inode is its raw forks,
/// at most sb_inodesize bytes, so 4096 of them stay under 10 MiB), the oldest evicted first.
/// Shared by every thread that reads the filesystem.
final class XFSInodeCache: Sendable {
    static let defaultCapacity = 4096
    let capacity: Int
    private let state = Mutex<(entries: [UInt64: XFSInode], order: [UInt64], next: Int)>(([:], [], 0))

    init(capacity: Int = XFSInodeCache.defaultCapacity) { self.capacity = max(1, capacity) }

    /// The cached inode `number`, or the one `load` decodes (cached when it succeeds).
    func inode(_ number: UInt64, load: () throws -> XFSInode) throws -> XFSInode {
        if let hit = state.withLock({ $0.entries[number] }) { return hit }
        let inode = try load()
        state.withLock { s in
            guard s.entries[number] == nil else { return }
            if s.order.count < capacity {
                s.order.append(number)
            } else {
                s.entries[s.order[s.next]] = nil
                s.order[s.next] = number
                s.next = (s.next + 1) % capacity
            }
            s.entries[number] = inode
        }
        return inode
    }

    var count: Int { state.withLock { $0.entries.count } }
}
