import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

@Suite struct Qcow2TableCacheTests {
    /// A cache of 4-byte "tables" whose content is their offset's low byte, counting loads.
    static func make(capacity: Int) -> (Qcow2TableCache, Locked<[UInt64]>) {
        let loads = Locked<[UInt64]>([])
        let cache = Qcow2TableCache(entryBytes: 4, capacityBytes: 4 * capacity) { offset, buffer in
            loads.withValue { $0.append(offset) }
            buffer.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: offset))
        }
        return (cache, loads)
    }

    @Test func hitsDoNotLoadAndLeastRecentlyUsedIsEvicted() throws {
        let (cache, loads) = Self.make(capacity: 2)
        #expect(try cache.withTable(at: 1) { $0[0] } == 1)
        #expect(try cache.withTable(at: 2) { $0[0] } == 2)
        #expect(try cache.withTable(at: 1) { $0[0] } == 1)   // hit; 2 is now the oldest
        #expect(loads.value == [1, 2])
        _ = try cache.withTable(at: 3) { $0[0] }               // evicts 2
        _ = try cache.withTable(at: 1) { $0[0] }               // still cached
        #expect(loads.value == [1, 2, 3])
        _ = try cache.withTable(at: 2) { $0[0] }
        #expect(loads.value == [1, 2, 3, 2])
        #expect(cache.count == 2)
    }

    @Test func pinnedTablesAreNotEvicted() throws {
        let (cache, loads) = Self.make(capacity: 2)
        try cache.withTable(at: 10) { outer in
            _ = try cache.withTable(at: 11) { _ in 0 }
            _ = try cache.withTable(at: 12) { _ in 0 }
            _ = try cache.withTable(at: 13) { _ in 0 }
            #expect(outer[0] == 10)
            _ = try cache.withTable(at: 10) { _ in 0 }          // pinned, so still there
        }
        #expect(loads.value == [10, 11, 12, 13])
        #expect(cache.count <= 3)
    }

    @Test func loaderErrorsPropagateAndCacheNothing() throws {
        struct Boom: Error {}
        let cache = Qcow2TableCache(entryBytes: 8, capacityBytes: 64) { _, _ in throw Boom() }
        #expect(throws: Boom.self) { try cache.withTable(at: 0) { _ in 0 } }
        #expect(cache.count == 0)
    }
}
