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

/// The XFS driver read against the kernel's own mount of the same images (XFSFixtures): by
/// inode number (st_ino is the XFS inode number), every attribute stat shows, symlink targets,
/// file bytes, SEEK_DATA/SEEK_HOLE ranges and statfs.
@Suite(.serialized) struct XFSFilesystemTests {
    static let configurations = ["v5-default", "v5-1k", "v5-inode2048", "rhel7-like", "v5-rmap-nrext64"]

    @Test(arguments: configurations)
    func attributesMatchTheKernel(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        #expect(fs.typeName == "xfs")
        #expect(fs.rootNode == image.entry("")?.ino)
        #expect(image.entries.count == 26)
        for k in image.entries {
            let a = try fs.attributes(k.ino)
            let where_ = "\(configuration): /\(k.path)"
            #expect(a.node == k.ino, "\(where_)")
            #expect(a.mode == k.mode, "\(where_): mode")
            #expect(a.uid == k.uid && a.gid == k.gid, "\(where_): owner")
            #expect(a.size == k.size, "\(where_): size")
            #expect(a.blocks512 == k.blocks, "\(where_): st_blocks \(a.blocks512) vs \(k.blocks)")
            #expect(UInt64(a.links) == k.links, "\(where_): nlink")
            #expect(a.atime == k.atime, "\(where_): atime \(a.atime) vs \(k.atime)")
            #expect(a.mtime == k.mtime, "\(where_): mtime \(a.mtime) vs \(k.mtime)")
            #expect(a.ctime == k.ctime, "\(where_): ctime \(a.ctime) vs \(k.ctime)")
            #expect(a.rdevMajor == k.rdevMajor && a.rdevMinor == k.rdevMinor, "\(where_): rdev")
        }
        // Hard links are one inode.
        #expect(image.entry("hello.txt")?.ino == image.entry("dir/hardlink")?.ino)
        #expect(try fs.attributes(#require(image.entry("hello.txt")).ino).links == 2)
    }

    /// The tree through entries and lookup: every path names the inode the kernel shows, with
    /// the type of its mode; lookups of missing names are nil, a file is not a directory.
    @Test(arguments: configurations)
    func treeMatchesTheKernel(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        var seen: [String: UInt64] = [:]
        func visit(_ dir: UInt64, _ path: String, depth: Int) throws {
            guard depth < 64 else { Issue.record("walk too deep"); return }
            for e in try fs.entries(dir) {
                let name = String(decoding: e.name, as: UTF8.self)
                let full = path.isEmpty ? name : path + "/" + name
                seen[full] = e.node
                #expect(try fs.lookup(dir, e.name) == e.node, "\(configuration): lookup \(full)")
                #expect(e.type == (try fs.attributes(e.node)).type, "\(configuration): type of \(full)")
                if e.type == .directory { try visit(e.node, full, depth: depth + 1) }
            }
        }
        try visit(fs.rootNode, "", depth: 0)
        var kernel: [String: UInt64] = [:]
        for k in image.entries where !k.path.isEmpty { kernel[k.path] = k.ino }
        #expect(seen == kernel, "\(configuration)")
        #expect(try fs.lookup(fs.rootNode, Array("no-such-name".utf8)) == nil)
        // The same paths by hash lookups alone (no listing read first, so no listing cache).
        let cold = try XFSFixtures.open(image)
        for k in image.entries where !k.path.isEmpty {
            var node = cold.rootNode
            for part in k.path.split(separator: "/") {
                node = try #require(try cold.lookup(node, Array(part.utf8)), "\(configuration): \(k.path)")
            }
            #expect(node == k.ino, "\(configuration): \(k.path)")
        }
        #expect(cold.listings.nameCount == 0)
        #expect(try cold.lookup(cold.rootNode, Array("no-such-name".utf8)) == nil)
        let e = #expect(throws: ImageError.self) { try fs.entries(#require(image.entry("hello.txt")).ino) }
        #expect(e?.errno == .notDirectory)
    }

    @Test(arguments: configurations)
    func symlinkTargetsMatchTheKernel(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        var remote = 0, inline = 0
        for k in image.entries where k.target != nil {
            #expect(try fs.readlink(k.ino) == k.target, "\(configuration): /\(k.path)")
            if case .local? = try fs.fork(of: fs.inode(k.ino)) { inline += 1 } else { remote += 1 }
        }
        #expect(inline >= 2 && remote >= (configuration == "v5-inode2048" ? 0 : 1), "\(configuration): \(inline) inline, \(remote) remote symlinks")
        // readlink of a file is EINVAL, as readlink(2).
        #expect(throws: ImageError.self) { try fs.readlink(#require(image.entry("hello.txt")).ino) }
    }

    @Test(arguments: configurations)
    func fileBytesAndDataRangesMatchTheKernel(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        var compared = 0
        for k in image.entries where k.bytes != nil {
            let file = try fs.openFile(k.ino)
            #expect(file.size == k.size)
            let same = try XFSFixtures.readAll(file) == k.bytes
            #expect(same, "\(configuration): /\(k.path) bytes")
            let ours = try file.dataRanges().map { [$0.offset, $0.length] }
            let kernel = (k.dataRanges ?? []).map { [$0.offset, $0.length] }
            let sameRanges = ours == kernel
            #expect(sameRanges, "\(configuration): /\(k.path) data ranges: \(ours.count) vs \(kernel.count), first \(ours.prefix(4)) vs \(kernel.prefix(4))")
            compared += 1
        }
        #expect(compared >= 9)
        // The fragmented file's map is a B+tree of several leaves (the gaps between its writes
        // are unwritten extents the kernel's EOF zeroing left); the preallocated one has unwritten extents.
        let frag = try fs.inode(#require(image.entry("frag.bin")).ino)
        #expect(frag.format == .btree)
        guard case .extents(let fragExtents)? = try fs.fork(of: frag) else { Issue.record("no extents"); return }
        #expect(fragExtents.filter { !$0.unwritten }.count >= 3000)
        let prealloc = try fs.inode(#require(image.entry("prealloc.bin")).ino)
        guard case .extents(let pre)? = try fs.fork(of: prealloc) else { Issue.record("no extents"); return }
        #expect(pre.contains { $0.unwritten } && pre.contains { !$0.unwritten })
    }

    /// listxattr/getxattr as the kernel answers them, for every inode: shortform, leaf and
    /// remote attributes, the trusted and security namespaces, ACLs.
    @Test(arguments: configurations)
    func xattrsMatchTheKernel(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        var withAttributes = 0
        for k in image.entries {
            let ours = try fs.xattrs(k.ino).sorted { $0.name < $1.name }
            let same = ours == k.xattrs
            #expect(same, "\(configuration): /\(k.path): \(ours.map(\.name)) vs \(k.xattrs.map(\.name))")
            for x in k.xattrs { #expect(try fs.xattr(k.ino, name: x.name) == x.value, "\(configuration): /\(k.path) \(x.name)") }
            #expect(try fs.xattr(k.ino, name: "user.not-there") == nil)
            if !k.xattrs.isEmpty { withAttributes += 1 }
        }
        #expect(withAttributes >= 6)
        #expect(image.entry("many-xattrs.bin")?.xattrs.count == 80)
        #expect(image.entry("remote-xattr.bin")?.xattrs.first?.value.count == 6000)
        #expect(image.entry("dir")?.xattrs.map(\.name).contains("system.posix_acl_default") == true)
    }

    @Test func readsAtOddOffsetsAcrossHolesAndTheEnd() throws {
        let image = try XFSFixtures.image("v5-1k")
        let fs = try XFSFixtures.open(image)
        for name in ["sparse.bin", "frag.bin", "big.bin", "prealloc.bin"] {
            let k = try #require(image.entry(name))
            let want = try #require(k.bytes)
            let file = try fs.openFile(k.ino)
            for (offset, length) in [(0, 1), (1023, 2), (4095, 10_000), (8191, 8194), (1_048_575, 4098), (5_242_880, 200),
                                     (want.count - 3, 10), (want.count, 5), (want.count + 4096, 5)] where offset >= 0 {
                var buffer = [UInt8](repeating: 0xAA, count: length)
                let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: UInt64(offset)) }
                let expected = offset < want.count ? Array(want[offset ..< min(want.count, offset + length)]) : []
                #expect(Array(buffer.prefix(n)) == expected, "\(name) offset \(offset) length \(length)")
            }
        }
    }

    @Test func parallelReadsAgree() async throws {
        let image = try XFSFixtures.image("v5-default")
        let fs = try XFSFixtures.open(image)
        let k = try #require(image.entry("frag.bin"))
        let want = try #require(k.bytes)
        let file = try fs.openFile(k.ino)
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for t in 0 ..< 8 {
                group.addTask {
                    var ok = true
                    for i in stride(from: t * 4096, to: want.count, by: 8 * 4096 * 7) {
                        var buffer = [UInt8](repeating: 0, count: 12_345)
                        let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: UInt64(i)) }
                        ok = ok && Array(buffer.prefix(n)) == Array(want[i ..< min(want.count, i + 12_345)])
                    }
                    return ok
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 8 && results.allSatisfy { $0 })
    }

    @Test(arguments: configurations)
    func statfsMatchesTheKernel(configuration: String) throws {
        let image = try XFSFixtures.image(configuration)
        let fs = try XFSFixtures.open(image)
        let u = try fs.usage()
        #expect([u.blockSize, u.totalBlocks, u.freeBlocks, u.availableBlocks, u.totalInodes, u.freeInodes] == image.statfs,
                "\(configuration)")
        #expect(u.maxNameLength == 255)
    }

    @Test func openingFailsForAWritableOpenAndNotAnXFS() throws {
        let image = try XFSFixtures.image("v5-default")
        let device = try RawImage(path: image.path, writable: false)
        let error = #expect(throws: ImageError.self) { try XFSFilesystem.driver.open(device, true, []) }
        #expect(error?.reason == "XFS is read-only in imagemount for now: mount without --rw")
        #expect(error?.errno == .readOnlyFileSystem)
        #expect(FilesystemRegistry.driver(for: "xfs") != nil)
        #expect(try XFSFilesystem.driver.open(device, false, ["inode64", "nouuid"]).typeName == "xfs")
    }

    @Test func inodeCacheStaysBounded() throws {
        let cache = XFSInodeCache(capacity: 3)
        let image = try XFSFixtures.image("v5-default")
        let fs = try XFSFixtures.open(image)
        for k in image.entries.prefix(10) { _ = try cache.inode(k.ino) { try fs.inode(k.ino) } }
        #expect(cache.count == 3)
        #expect(fs.inodes.count <= XFSInodeCache.defaultCapacity)
        // Listings: held up to the name bound, oldest evicted, and answering lookups exactly.
        let listings = XFSListingCache(maxNames: 5)
        let two = [DirectoryEntry(name: [0x61], node: 10, type: .regular), DirectoryEntry(name: [0x62], node: 11, type: .regular)]
        listings.store(1, two)
        listings.store(2, two)
        #expect(listings.lookup(1, [0x61]) == .some(10) && listings.lookup(1, [0x63]) == .some(nil))
        listings.store(3, two)
        #expect(listings.nameCount == 4 && listings.lookup(1, [0x61]) == nil && listings.lookup(3, [0x62]) == .some(11))
        listings.store(4, (0 ..< 6).map { DirectoryEntry(name: [UInt8($0)], node: 1, type: .regular) })
        #expect(listings.lookup(4, [0]) == nil)
    }
}
