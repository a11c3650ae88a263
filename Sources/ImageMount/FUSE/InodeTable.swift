import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import Synchronization

/// The FUSE inode numbers the kernel knows, and how many lookups it holds on each
/// (the model is passthrough_ll.c's inode table; STYLE.md §2).
///
/// The key is the guest node (which filesystem of the mount tree, which ext inode), so every
/// hard link of a file is one FUSE inode. FUSE inode numbers are ids the table hands out; the
/// root is FUSE_ROOT_ID (1), pinned so it is never freed. This type is the only code that
/// changes lookup counts, and it changes them under one mutex.
final class InodeTable: Sendable {
    /// FUSE_ROOT_ID in fuse_lowlevel.h: the kernel asks for the root by this number.
    static let rootID: UInt64 = 1

    private struct Entry {
        let node: GuestNode
        var lookups: UInt64
    }

    private struct State {
        var byID: [UInt64: Entry] = [:]
        var byNode: [GuestNode: UInt64] = [:]
        var nextID: UInt64 = InodeTable.rootID + 1
    }

    private let state: Mutex<State>
    let root: GuestNode

    init(root: GuestNode) {
        self.root = root
        var s = State()
        s.byID[Self.rootID] = Entry(node: root, lookups: 1)
        s.byNode[root] = Self.rootID
        state = Mutex(s)
    }

    /// The guest node behind FUSE inode `id`, or nil when the kernel names one we do not know.
    func node(_ id: UInt64) -> GuestNode? {
        state.withLock { $0.byID[id]?.node }
    }

    /// Records one more kernel reference to `node` (a successful lookup or readdirplus entry)
    /// and returns its FUSE inode number, creating it with a count of 1 if it is new.
    func lookup(_ node: GuestNode) -> UInt64 {
        state.withLock { s in
            if let id = s.byNode[node] {
                s.byID[id]!.lookups += 1
                return id
            }
            let id = s.nextID
            s.nextID += 1
            s.byID[id] = Entry(node: node, lookups: 1)
            s.byNode[node] = id
            return id
        }
    }

    /// Drops `count` kernel references to `id` (forget, forget_multi, or an entry that did not
    /// fit a readdirplus buffer), freeing the number at zero. The root is never freed.
    /// Returns the node when this freed it, so that its filesystem can release an inode
    /// unlinked while the kernel still held it.
    @discardableResult
    func forget(_ id: UInt64, count: UInt64) -> GuestNode? {
        state.withLock { s -> GuestNode? in
            guard var entry = s.byID[id] else {
                preconditionFailure("forget of unknown FUSE inode \(id)")
            }
            precondition(entry.lookups >= count, "forget \(count) of FUSE inode \(id) with only \(entry.lookups) lookups")
            entry.lookups -= count
            if entry.lookups == 0 && id != Self.rootID {
                s.byID[id] = nil
                s.byNode[entry.node] = nil
                return entry.node
            }
            s.byID[id] = entry
            return nil
        }
    }

    /// Whether the kernel holds `node` (it has a FUSE inode number now).
    func contains(_ node: GuestNode) -> Bool {
        state.withLock { $0.byNode[node] != nil }
    }

    /// The lookup count of `id` (0 when unknown): for tests and debugging.
    func lookups(_ id: UInt64) -> UInt64 {
        state.withLock { $0.byID[id]?.lookups ?? 0 }
    }

    /// How many FUSE inodes are live, the root included.
    var count: Int { state.withLock { $0.byID.count } }
}
