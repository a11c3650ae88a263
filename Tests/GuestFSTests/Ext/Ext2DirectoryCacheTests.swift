import Testing
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

/// The directory cache as writers keep it up to date: new names go last, removed ones
/// vanish from listings and lookups, a name removed and added again is listed once, and the
/// block hints follow.
@Suite struct Ext2DirectoryCacheTests {
    static func entry(_ name: String, _ inode: UInt32) -> DirEntry {
        DirEntry(name: Array(name.utf8), inode: inode, fileType: DirEntry.typeRegular)
    }

    @Test func updatesFollowCreatesAndRemoves() {
        let cache = Ext2DirectoryCache(maxEntries: 100)
        cache.insert(2, [Self.entry("a", 11), Self.entry("b", 12)], blocks: [Array("a".utf8): 0, Array("b".utf8): 0])
        cache.update(2, name: Array("c".utf8), entry: Self.entry("c", 13), block: 3)
        cache.update(2, name: Array("a".utf8), entry: nil)
        cache.update(2, name: Array("a".utf8), entry: Self.entry("a", 14), block: 3)
        cache.update(2, name: Array("b".utf8), entry: Self.entry("b", 15))
        let index = cache.entries(of: 2)!
        // A name removed and added again keeps its first place, and is listed once.
        #expect(index.list.map(\.nameString) == ["a", "b", "c"])
        #expect(index.list.map(\.inode) == [14, 15, 13])
        #expect(index.byName[Array("a".utf8)]?.inode == 14)
        #expect(index.blocks[Array("a".utf8)] == 3 && index.blocks[Array("b".utf8)] == 0)
        // A directory not in the cache stays out of it.
        cache.update(7, name: Array("x".utf8), entry: Self.entry("x", 1))
        #expect(cache.entries(of: 7) == nil)
    }

    @Test func churnDoesNotGrowTheOrderWithoutBound() {
        let cache = Ext2DirectoryCache(maxEntries: 100_000)
        cache.insert(2, [])
        for round in 0..<50 {
            for i in 0..<100 { cache.update(2, name: Array("f\(i)".utf8), entry: Self.entry("f\(i)", UInt32(round * 100 + i))) }
            for i in 0..<100 { cache.update(2, name: Array("f\(i)".utf8), entry: nil) }
        }
        cache.update(2, name: Array("last".utf8), entry: Self.entry("last", 1))
        let index = cache.entries(of: 2)!
        #expect(index.list.map(\.nameString) == ["last"])
        #expect(index.order.count < 300)
    }
}

/// The io_manager's write-through block cache: a cached block is served until a write covers
/// it, and then holds what was written (or is dropped when the write covers only part of it).
@Suite struct IOChannelCacheTests {
    @Test func writesUpdateOrDropCachedBlocks() {
        let cache = IOChannelCache(capacity: 8)
        let a = [UInt8](repeating: 1, count: 1024), b = [UInt8](repeating: 2, count: 1024)
        a.withUnsafeBytes { cache.store(at: 0, $0) }
        b.withUnsafeBytes { cache.store(at: 1024, $0) }
        var out = [UInt8](repeating: 0, count: 1024)
        #expect(out.withUnsafeMutableBytes { cache.read(at: 1024, into: $0) } && out == b)
        // A write covering block 0 whole and block 1 in part.
        let w = [UInt8](repeating: 9, count: 1100)
        w.withUnsafeBytes { cache.wrote(at: 0, $0) }
        #expect(out.withUnsafeMutableBytes { cache.read(at: 0, into: $0) } && out == [UInt8](repeating: 9, count: 1024))
        #expect(!out.withUnsafeMutableBytes { cache.read(at: 1024, into: $0) })
        // Other sizes are not served; a new size clears the cache.
        var small = [UInt8](repeating: 0, count: 512)
        #expect(!small.withUnsafeMutableBytes { cache.read(at: 0, into: $0) })
        [UInt8](repeating: 3, count: 4096).withUnsafeBytes { cache.store(at: 8192, $0) }
        #expect(!out.withUnsafeMutableBytes { cache.read(at: 0, into: $0) })
    }

    @Test func evictsTheLeastRecentlyUsed() {
        let cache = IOChannelCache(capacity: 4)
        for i in 0..<4 { [UInt8](repeating: UInt8(i), count: 1024).withUnsafeBytes { cache.store(at: UInt64(i) * 1024, $0) } }
        var out = [UInt8](repeating: 0, count: 1024)
        _ = out.withUnsafeMutableBytes { cache.read(at: 0, into: $0) }
        [UInt8](repeating: 7, count: 1024).withUnsafeBytes { cache.store(at: 8 * 1024, $0) }
        #expect(out.withUnsafeMutableBytes { cache.read(at: 0, into: $0) })
        #expect(out.withUnsafeMutableBytes { cache.read(at: 8 * 1024, into: $0) })
    }

    /// Blocks live in reused slab slots: over random stores, writes and evictions, every hit
    /// returns what the device (a model) holds, and a block just stored is a hit.
    @Test func slotsAreReusedWithoutMixingBlocks() {
        let cache = IOChannelCache(capacity: 16)
        var device: [UInt64: [UInt8]] = [:]
        var rng = SystemRandomNumberGenerator()
        var out = [UInt8](repeating: 0, count: 1024)
        for step in 0..<5000 {
            let key = UInt64(Int.random(in: 0..<64, using: &rng)) * 1024
            switch Int.random(in: 0..<3, using: &rng) {
            case 0:
                let block = device[key] ?? [UInt8](repeating: UInt8(key / 1024), count: 1024)
                device[key] = block
                block.withUnsafeBytes { cache.store(at: key, $0) }
                #expect(out.withUnsafeMutableBytes { cache.read(at: key, into: $0) } && out == block, "step \(step)")
            case 1:
                // A write of one or two whole blocks, or part of one.
                let length = [1024, 2048, 700].randomElement(using: &rng) ?? 1024
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                bytes.withUnsafeBytes { cache.wrote(at: key, $0) }
                var k = key
                var rest = bytes[...]
                while !rest.isEmpty {
                    var block = device[k] ?? [UInt8](repeating: UInt8(truncatingIfNeeded: k / 1024), count: 1024)
                    let n = min(1024, rest.count)
                    block.replaceSubrange(0..<n, with: rest.prefix(n))
                    device[k] = block
                    rest = rest.dropFirst(n)
                    k += 1024
                }
            default:
                if out.withUnsafeMutableBytes({ cache.read(at: key, into: $0) }) {
                    #expect(out == device[key], "step \(step)")
                }
            }
        }
    }
}
