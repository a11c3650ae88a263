import Foundation
import GuestFSBlock
import Testing
import TestSupport

/// `NBDBlockStatus.extents`: a server's `base:allocation` answer clipped to the request and the
/// export, refused when it breaks the protocol (doc/proto.md "NBD_CMD_BLOCK_STATUS").
@Suite struct NBDBlockStatusTests {
    typealias Refusal = NBDBlockStatus.Refusal
    let zero = NBDBlockStatus.stateZero, hole = NBDBlockStatus.stateHole

    @Test func extentsInsideTheRequestAreKeptAndMerged() throws {
        // data 4 KiB, hole+zero 8 KiB, zero 4 KiB (merged with it), data 4 KiB.
        let e = try NBDBlockStatus.extents(entries: [4096, 0, 8192, hole | zero, 4096, zero, 4096, 0],
                                           start: 1 << 20, request: (1 << 20)..<((1 << 20) + 20480), exportSize: 64 << 20)
        #expect(e == [NBDExtent(offset: 1 << 20, length: 4096, isZero: false),
                      NBDExtent(offset: (1 << 20) + 4096, length: 12288, isZero: true),
                      NBDExtent(offset: (1 << 20) + 16384, length: 4096, isZero: false)])
    }

    /// A hole without NBD_STATE_ZERO says nothing about what it reads as: it is data.
    @Test func aHoleWithoutZeroIsRead() throws {
        let e = try NBDBlockStatus.extents(entries: [65536, hole], start: 0, request: 0..<65536, exportSize: 65536)
        #expect(e == [NBDExtent(offset: 0, length: 65536, isZero: false)])
    }

    /// The last extent may run past the request (and a hostile one past the export): clipped.
    @Test func lengthsPastTheRequestOrTheExportAreClipped() throws {
        let past = try NBDBlockStatus.extents(entries: [4096, 0, 0xFFFF_FFFF, zero, 4096, 0],
                                              start: 0, request: 0..<(1 << 20), exportSize: 64 << 20)
        #expect(past == [NBDExtent(offset: 0, length: 4096, isZero: false), NBDExtent(offset: 4096, length: (1 << 20) - 4096, isZero: true)])
        let pastExport = try NBDBlockStatus.extents(entries: [0xFFFF_0000, zero], start: (64 << 20) - 512,
                                                    request: ((64 << 20) - 512)..<(UInt64.max - 1), exportSize: 64 << 20)
        #expect(pastExport == [NBDExtent(offset: (64 << 20) - 512, length: 512, isZero: true)])
        // Near UInt64.max: no wrap.
        let top = UInt64.max - 100
        let e = try NBDBlockStatus.extents(entries: [0xFFFF_FFFF, zero], start: top, request: top..<UInt64.max, exportSize: UInt64.max)
        #expect(e == [NBDExtent(offset: top, length: 100, isZero: true)])
    }

    /// Fewer extents than asked for: what they cover, the rest left unknown (read).
    @Test func aShortAnswerCoversLess() throws {
        let e = try NBDBlockStatus.extents(entries: [512, zero], start: 0, request: 0..<(64 << 20), exportSize: 64 << 20)
        #expect(e == [NBDExtent(offset: 0, length: 512, isZero: true)])
    }

    @Test func protocolViolationsAreRefused() {
        #expect(throws: Refusal.emptyDescriptor(index: 1)) {
            try NBDBlockStatus.extents(entries: [4096, 0, 0, zero, 4096, 0], start: 0, request: 0..<(1 << 20), exportSize: 1 << 20)
        }
        #expect(throws: Refusal.wrongStart(512)) {
            try NBDBlockStatus.extents(entries: [4096, 0], start: 512, request: 0..<4096, exportSize: 1 << 20)
        }
        #expect(throws: Refusal.oddEntryCount(3)) {
            try NBDBlockStatus.extents(entries: [4096, 0, 4096], start: 0, request: 0..<8192, exportSize: 1 << 20)
        }
        #expect(throws: Refusal.nothingInside) {
            try NBDBlockStatus.extents(entries: [], start: 0, request: 0..<8192, exportSize: 1 << 20)
        }
        // A request at or past the end of the export has nothing inside.
        #expect(throws: Refusal.nothingInside) {
            try NBDBlockStatus.extents(entries: [4096, zero], start: 1 << 20, request: (1 << 20)..<((1 << 20) + 4096), exportSize: 1 << 20)
        }
    }

    /// Too many descriptors: the first `maxDescriptors` are used, the rest stays unknown.
    @Test func tooManyDescriptorsAreCut() throws {
        let n = NBDBlockStatus.maxDescriptors + 1000
        let entries = (0..<n).flatMap { i -> [UInt32] in [512, i % 2 == 0 ? zero : 0] }
        let e = try NBDBlockStatus.extents(entries: entries, start: 0, request: 0..<UInt64(n * 512), exportSize: 1 << 40)
        #expect(e.count == NBDBlockStatus.maxDescriptors)
        #expect(e.last?.end == UInt64(NBDBlockStatus.maxDescriptors * 512))
    }
}

/// `NBDAllocationCache`: bounded, least recently used windows go first, writes forget.
@Suite struct NBDAllocationCacheTests {
    static func window(at offset: UInt64, extents: Int, length: UInt64 = 4096) -> [NBDExtent] {
        (0..<extents).map { NBDExtent(offset: offset + UInt64($0) * length, length: length, isZero: $0 % 2 == 0) }
    }

    @Test func lookupClipsToTheRangeAndStopsAtTheWindowsEnd() {
        var cache = NBDAllocationCache()
        cache.insert(Self.window(at: 0, extents: 4), generation: cache.generation)
        #expect(cache.lookup(from: 100, to: 5000) == [NBDExtent(offset: 100, length: 3996, isZero: true),
                                                       NBDExtent(offset: 4096, length: 904, isZero: false)])
        #expect(cache.lookup(from: 12288, to: 1 << 20) == [NBDExtent(offset: 12288, length: 4096, isZero: false)])
        #expect(cache.lookup(from: 16384, to: 1 << 20).isEmpty)
    }

    @Test func boundedByWindowsAndExtents() {
        var cache = NBDAllocationCache()
        for i in 0..<(NBDAllocationCache.maxWindows + 10) {
            cache.insert(Self.window(at: UInt64(i) << 30, extents: 2), generation: cache.generation)
        }
        #expect(cache.windowCount == NBDAllocationCache.maxWindows)
        // The oldest went: window 0 is gone, the last one is there.
        #expect(cache.lookup(from: 0, to: 4096).isEmpty)
        #expect(!cache.lookup(from: UInt64(NBDAllocationCache.maxWindows + 9) << 30, to: UInt64.max).isEmpty)
        for i in 0..<5 {
            cache.insert(Self.window(at: UInt64(100 + i) << 30, extents: NBDAllocationCache.maxExtents / 3), generation: cache.generation)
            #expect(cache.totalExtents <= NBDAllocationCache.maxExtents)
        }
        // One window larger than the whole cache is cut to it.
        cache.insert(Self.window(at: 1 << 40, extents: NBDAllocationCache.maxExtents * 2, length: 512), generation: cache.generation)
        #expect(cache.totalExtents == NBDAllocationCache.maxExtents && cache.windowCount == 1)
    }

    @Test func recentlyUsedWindowsStay() {
        var cache = NBDAllocationCache()
        for i in 0..<NBDAllocationCache.maxWindows {
            cache.insert(Self.window(at: UInt64(i) << 30, extents: 1), generation: cache.generation)
        }
        _ = cache.lookup(from: 0, to: 1)
        cache.insert(Self.window(at: 1 << 40, extents: 1), generation: cache.generation)
        #expect(!cache.lookup(from: 0, to: 1).isEmpty)
        #expect(cache.lookup(from: 1 << 30, to: (1 << 30) + 1).isEmpty)
    }

    @Test func writesForgetAndStaleAnswersAreDropped() {
        var cache = NBDAllocationCache()
        cache.insert(Self.window(at: 0, extents: 4), generation: cache.generation)
        cache.insert(Self.window(at: 1 << 30, extents: 4), generation: cache.generation)
        let before = cache.generation
        cache.invalidate(8000..<8001)
        #expect(cache.lookup(from: 0, to: 16384).isEmpty)
        #expect(!cache.lookup(from: 1 << 30, to: (1 << 30) + 1).isEmpty)
        // An answer asked for before that write is not kept.
        cache.insert(Self.window(at: 0, extents: 4), generation: before)
        #expect(cache.lookup(from: 0, to: 16384).isEmpty)
        // An overlapping insert replaces the old window.
        cache.insert([NBDExtent(offset: 1 << 30, length: 100, isZero: false)], generation: cache.generation)
        #expect(cache.lookup(from: (1 << 30) + 50, to: 1 << 31) == [NBDExtent(offset: (1 << 30) + 50, length: 50, isZero: false)])
        #expect(cache.windowCount == 1)
    }
}
