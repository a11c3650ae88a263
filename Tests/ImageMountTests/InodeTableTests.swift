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
}
