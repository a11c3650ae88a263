@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing
@testable import ImageMount

@Suite struct InodeTableTests {
    let root = GuestNode(mount: 0, inode: 2)

    @Test func rootIsPinnedAsFuseRootID() {
        let table = InodeTable(root: root)
        #expect(table.node(InodeTable.rootID) == root)
        #expect(table.lookup(root) == InodeTable.rootID)
        table.forget(InodeTable.rootID, count: 2)
        #expect(table.node(InodeTable.rootID) == root, "the root is never freed")
    }

    @Test func hardLinksShareOneInodeAndCountsAddUp() {
        let table = InodeTable(root: root)
        let file = GuestNode(mount: 0, inode: 12)
        let id = table.lookup(file)
        #expect(table.lookup(file) == id, "same (filesystem, inode) gives the same FUSE inode")
        #expect(table.lookups(id) == 2)
        let other = table.lookup(GuestNode(mount: 1, inode: 12))
        #expect(other != id, "the same ext inode on another filesystem is another FUSE inode")
        table.forget(id, count: 1)
        #expect(table.node(id) == file)
        table.forget(id, count: 1)
        #expect(table.node(id) == nil, "freed at zero")
        #expect(table.count == 2)
        #expect(table.lookup(file) != id, "numbers are not reused")
    }

    /// Read-only mounts: numbers are computed from the node, so a walk of any size leaves the
    /// table as it was (bench/million-files.sh: a million lookups held a million entries).
    @Test func readOnlyNumbersAreComputedAndHoldNothing() {
        let table = InodeTable(root: root, counting: false)
        var ids = Set<UInt64>()
        for mount in 0..<3 {
            for inode in UInt64(1)...20_000 {
                let node = GuestNode(mount: mount, inode: inode)
                let id = table.lookup(node)
                #expect(table.lookup(node) == id, "the same node, the same number")
                if node != root { ids.insert(id) }
                #expect(table.node(id) == node)
            }
        }
        #expect(ids.count == 3 * 20_000 - 1, "distinct nodes, distinct numbers")
        #expect(!ids.contains(InodeTable.rootID) && !ids.contains(0))
        #expect(table.count == 1, "only the root is held")
        #expect(table.lookup(root) == InodeTable.rootID)
        // forget of a computed number is a no-op, and the number still names its node.
        let file = GuestNode(mount: 0, inode: 12)
        let id = table.lookup(file)
        #expect(table.forget(id, count: 5) == nil)
        #expect(table.node(id) == file)
    }

    /// A node whose number does not fit in the encoding is counted, as on a writable mount.
    @Test func readOnlyNodesThatDoNotFitAreCounted() {
        let table = InodeTable(root: root, counting: false)
        let big = GuestNode(mount: 0, inode: 1 << 60), late = GuestNode(mount: 300, inode: 5)
        let a = table.lookup(big), b = table.lookup(late)
        #expect(a >> InodeTable.inodeBits == 0 && b >> InodeTable.inodeBits == 0, "from the counted range")
        #expect(table.node(a) == big && table.node(b) == late)
        #expect(table.count == 3)
        table.forget(a, count: 1)
        #expect(table.node(a) == nil)
        #expect(table.count == 2)
    }
}
