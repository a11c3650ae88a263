import Foundation
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
import TestSupport
@testable import ImageMount

/// readdirplus with a fake "kernel": entries are packed by a closure that accepts a fixed
/// size per entry, so a tiny buffer forces the not-fits path.
@Suite struct DirectoryPackerTests {
    @Test func tinyBufferKeepsLookupCountsRight() throws {
        let dir = try TempDir("imagemount-packer")
        try Shell.check("mkdir \(dir.file("src")) && cd \(dir.file("src")) && touch a b c d e && mke2fs -q -t ext4 -d . \(dir.file("fs.img")) 8M")
        let guest = try Guest(drives: [DriveSpec(path: dir.file("fs.img"))])
        let tree = try MountTree(entries: [(guest.devices[0], "/")], writable: false)
        // Counted FUSE numbers, as a writable mount has them (a read-only mount computes its
        // numbers and counts nothing: InodeTableTests).
        var options = FuseServerOptions()
        options.readOnly = false
        let server = FuseServer(tree: tree, options: options, onReady: {})
        let entries = try tree.entries(tree.root) { Issue.record("rejected \($0.message)") }
        var items: [DirectoryListing.Item] = [.init(name: [0x2E], node: tree.root, type: .directory, isDot: true),
                                               .init(name: [0x2E, 0x2E], node: tree.root, type: .directory, isDot: true)]
        items += entries.map { .init(name: $0.name, node: $0.node, type: $0.type, isDot: false) }
        let listing = DirectoryListing(items: items)
        let entrySize = 100
        var packedNames: [[UInt8]] = []
        var offset = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 250, alignment: 8)
        defer { buffer.deallocate() }
        while offset < items.count {
            var packedThisCall = 0
            let result = DirectoryPacker.pack(listing, from: offset, into: buffer, plus: true, server: server) { name, _, next, room in
                guard room.count >= entrySize else { return entrySize }
                packedNames.append(Array(name.dropLast()))
                packedThisCall += 1
                offset = next
                return entrySize
            }
            #expect(try result.get().used == packedThisCall * entrySize)
            #expect(packedThisCall == 2, "250 bytes hold two entries of 100")
            if packedThisCall == 0 { break }
        }
        #expect(packedNames == items.map(\.name), "every entry exactly once, in order")
        // Every real entry was looked up exactly once (the ones that did not fit were undone);
        // `.` and `..` never were.
        #expect(server.inodes.count == 1 + entries.count)
        for e in entries {
            let id = server.inodes.lookup(e.node)
            #expect(server.inodes.lookups(id) == 2)
        }
    }
}
