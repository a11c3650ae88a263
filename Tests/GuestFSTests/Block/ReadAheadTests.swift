import GuestFSBlock
import Testing

/// `ReadAhead` (Block/ReadAhead.swift) on its own: which reads are sequential, how the window
/// grows and where it stops, the byte budget, and what a write does to the chunks.
@Suite struct ReadAheadTests {
    static let chunk: UInt64 = 256 << 10

    @Test func randomReadsPrefetchNothingAndSequentialOnesGrowToTheCap() {
        var ra = ReadAhead<Int>(chunkBytes: Self.chunk, maxBytes: 4 << 20, size: 64 << 20)
        // Scattered reads: no stream continues, nothing is wanted.
        for offset: UInt64 in [5 << 20, 40 << 20, 1 << 20, 33 << 20, 17 << 20, 60 << 20] {
            #expect(ra.observe(offset: offset, length: 65536) == nil)
        }
        // A sequential run of 128 KiB reads: twice the read, then doubling, capped at 4 MiB.
        var offset: UInt64 = 8 << 20
        #expect(ra.observe(offset: offset, length: 128 << 10) == nil)
        offset += 128 << 10
        var windows: [UInt64] = []
        for _ in 0..<8 {
            let wanted = ra.observe(offset: offset, length: 128 << 10)
            offset += 128 << 10
            #expect(wanted?.lowerBound == offset)
            windows.append(UInt64(wanted?.count ?? 0))
        }
        let kib: UInt64 = 1024
        let expected: [UInt64] = [256 * kib, 512 * kib, 1024 * kib, 2048 * kib, 4096 * kib, 4096 * kib, 4096 * kib, 4096 * kib]
        #expect(windows == expected)
    }

    @Test func twoInterleavedStreamsAreBothSeen() {
        var ra = ReadAhead<Int>(chunkBytes: Self.chunk, maxBytes: 4 << 20, size: 64 << 20)
        var a: UInt64 = 0, b: UInt64 = 32 << 20
        var hits = 0
        for _ in 0..<6 {
            if ra.observe(offset: a, length: 1 << 20) != nil { hits += 1 }
            if ra.observe(offset: b, length: 1 << 20) != nil { hits += 1 }
            a += 1 << 20
            b += 1 << 20
        }
        #expect(hits == 10)
    }

    @Test func theWindowStopsAtTheEnd() {
        let size: UInt64 = (3 << 20) + 1000
        var ra = ReadAhead<Int>(chunkBytes: Self.chunk, maxBytes: 16 << 20, size: size)
        _ = ra.observe(offset: 0, length: 1 << 20)
        #expect(ra.observe(offset: 1 << 20, length: 1 << 20) == (2 << 20)..<size)
        #expect(ra.range(ofChunk: size / Self.chunk) == (3 << 20)..<size)
        #expect(ra.observe(offset: 2 << 20, length: Int(size - (2 << 20))) == nil)
    }

    @Test func budgetEvictionAndWrites() {
        var ra = ReadAhead<Int>(chunkBytes: Self.chunk, maxBytes: 4 * Self.chunk, size: 64 << 20)
        for i: UInt64 in 0..<4 {
            #expect(ra.makeRoom(for: Self.chunk, keeping: 0..<0).fits)
            ra.insert(i, payload: Int(i))
        }
        #expect(ra.heldBytes == 4 * Self.chunk && ra.inFlightCount == 4)
        // Full, and all in flight: nothing can go.
        #expect(!ra.makeRoom(for: Self.chunk, keeping: 0..<0).fits)
        #expect(ra.complete(0, succeeded: true) == nil)
        #expect(ra.complete(1, succeeded: false)?.payload == 1)
        #expect(ra.chunks[1] == nil && ra.inFlightCount == 2)
        // Arrived chunk 0 is evicted for room unless it is to be kept.
        #expect(ra.makeRoom(for: Self.chunk, keeping: 0..<0).fits)
        ra.insert(5, payload: 5)
        #expect(!ra.makeRoom(for: Self.chunk, keeping: 0..<Self.chunk).fits)
        let room = ra.makeRoom(for: Self.chunk, keeping: (4 * Self.chunk)..<(8 * Self.chunk))
        #expect(room.fits && room.evicted.map(\.payload) == [0])
        // A write over chunks 2 (in flight) and 5 (arrived): 5 goes, 2 is stale and goes when done.
        ra.insert(6, payload: 6)
        #expect(ra.complete(5, succeeded: true) == nil)
        let removed = ra.invalidate((2 * Self.chunk + 1)..<(5 * Self.chunk + 2))
        #expect(removed.map(\.payload) == [5])
        #expect(ra.chunks[2]?.isStale == true && ra.chunks[3]?.isStale == true && ra.chunks[6]?.isStale == false)
        #expect(ra.complete(2, succeeded: true)?.payload == 2)
        #expect(ra.chunks[2] == nil)
    }
}
