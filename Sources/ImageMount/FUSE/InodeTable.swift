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
///
/// On a read-only mount (`counting: false`) a node's FUSE number is computed from the node
/// itself (`encoded`): the filesystem of the tree in the top byte, the inode below, as
/// fuse2fs hands out ext inode numbers as they are. Nothing can be unlinked or reused there, so
/// no count is kept and forget has nothing to do: the table no longer grows with every inode
/// the kernel caches (a walk of a million files held a million entries, 100 MiB and more,
/// bench/million-files.sh). Only a node whose number does not fit (an inode number of 2^56 or
/// more, a 255th filesystem) gets a counted entry as before.
final class InodeTable: Sendable {
    /// FUSE_ROOT_ID in fuse_lowlevel.h: the kernel asks for the root by this number.
    static let rootID: UInt64 = 1
    /// Bits of an encoded number that carry the inode; the filesystem index + 1 is above them,
    /// so an encoded number is never 0, the root's 1 or a counted entry's (below 2^56).
    static let inodeBits = 56
    static let inodeMask: UInt64 = (1 << inodeBits) - 1

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
    /// Whether every node is counted (writable mounts) or numbers are computed (read-only).
    let counting: Bool

    init(root: GuestNode, counting: Bool = true) {
        self.root = root
        self.counting = counting
        var s = State()
        s.byID[Self.rootID] = Entry(node: root, lookups: 1)
        s.byNode[root] = Self.rootID
        state = Mutex(s)
    }

    /// The computed FUSE number of `node` on a read-only mount, or nil when it does not fit.
    func encoded(_ node: GuestNode) -> UInt64? {
        guard !counting, node != root, node.mount >= 0, node.mount < 255, node.inode <= Self.inodeMask else { return nil }
        return (UInt64(node.mount) + 1) << Self.inodeBits | node.inode
    }

    /// Whether `id` is a computed number rather than a counted entry's.
    private func isEncoded(_ id: UInt64) -> Bool { !counting && id > Self.inodeMask }

    /// The guest node behind FUSE inode `id`, or nil when the kernel names one we do not know.
    func node(_ id: UInt64) -> GuestNode? {
        if isEncoded(id) { return GuestNode(mount: Int(id >> Self.inodeBits) - 1, inode: id & Self.inodeMask) }
        return state.withLock { $0.byID[id]?.node }
    }

    /// Records one more kernel reference to `node` (a successful lookup or readdirplus entry)
    /// and returns its FUSE inode number, creating it with a count of 1 if it is new.
    func lookup(_ node: GuestNode) -> UInt64 {
        if let id = encoded(node) { return id }
        return state.withLock { s in
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
        // A computed number holds no count (and frees nothing: the mount is read-only).
        if isEncoded(id) { return nil }
        return state.withLock { s -> GuestNode? in
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

    /// Whether the kernel holds `node` (it has a FUSE inode number now). Known only where
    /// nodes are counted (writable mounts, the only ones that ask).
    func contains(_ node: GuestNode) -> Bool {
        state.withLock { $0.byNode[node] != nil }
    }

    /// The lookup count of `id` (0 when unknown or computed): for tests and debugging.
    func lookups(_ id: UInt64) -> UInt64 {
        state.withLock { $0.byID[id]?.lookups ?? 0 }
    }

    /// How many counted FUSE inodes are live, the root included.
    var count: Int { state.withLock { $0.byID.count } }
}
