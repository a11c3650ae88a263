/// Sequential read-ahead for the network sources (`NBDConnection`, `RBDConnection`): which reads
/// form a sequential stream, how far ahead of it to read, and the chunks read ahead so far.
///
/// A unit of its own (STYLE.md rule 10): it knows byte ranges and chunk states, not NBD or RBD.
/// Its owner issues the requests, keeps each chunk's buffer in `Payload` and holds the lock
/// around every call (the sources are read from several FUSE threads at once).
///
/// Detection follows the shape of the kernel's on-demand readahead (mm/readahead.c): a read
/// that starts where a stream's last read ended (or, once the stream has a window, within that
/// window of it: the FUSE server's threads deliver one stream's reads a little out of order)
/// continues the stream, and the stream's window starts at twice the read and doubles on every
/// hit up to `maxBytes`; any other read starts a new stream (the least recently used of
/// `maxStreams` goes) and prefetches nothing, so random access reads only what it asks for.
///
/// Chunks are `chunkBytes`-aligned pieces of the source (the last one ends at its end): one
/// request each. The bytes they hold (in flight or arrived) never exceed `maxBytes`. A chunk a
/// read has delivered up to its end is dropped; arrived chunks no stream wants are evicted,
/// oldest first, to make room. A write makes the chunks it overlaps useless: arrived ones are
/// removed (`invalidate` returns them to be freed) and ones in flight are marked stale, to be
/// dropped when they complete (their buffer is still the request's).
package struct ReadAhead<Payload> {
    package enum State: Equatable, Sendable { case inFlight, arrived }

    package struct Chunk {
        package let range: Range<UInt64>
        package var payload: Payload
        package var state: State
        /// A write overlapped it after it was asked for: its bytes may be older than the write's.
        package var isStale = false
        fileprivate var sequence: UInt64
    }

    package let chunkBytes: UInt64
    package let maxBytes: UInt64
    package let size: UInt64
    /// By chunk index (offset / chunkBytes).
    package private(set) var chunks: [UInt64: Chunk] = [:]
    /// What the chunks hold, in flight or arrived.
    package private(set) var heldBytes: UInt64 = 0
    package private(set) var inFlightCount = 0

    private struct Stream {
        var next: UInt64
        var window: UInt64
        var lastUse: UInt64
    }
    package static var maxStreams: Int { 8 }
    private var streams: [Stream] = []
    private var clock: UInt64 = 0

    /// `chunkBytes` ≥ 1 and `maxBytes` ≥ `chunkBytes`, or nothing is ever read ahead.
    package init(chunkBytes: UInt64, maxBytes: UInt64, size: UInt64) {
        self.chunkBytes = max(chunkBytes, 1)
        self.maxBytes = maxBytes
        self.size = size
    }

    package var isEnabled: Bool { maxBytes >= chunkBytes }

    /// Notes a read of `length` bytes at `offset`; returns the range to have read ahead (from its
    /// end, within the source), or nil when the read is not part of a sequential stream.
    package mutating func observe(offset: UInt64, length: Int) -> Range<UInt64>? {
        guard isEnabled, length > 0 else { return nil }
        clock += 1
        let end = offset + UInt64(length)
        let hit = streams.firstIndex { s in
            s.next == offset || (s.window > 0 && offset < s.next + s.window && offset + s.window > s.next)
        }
        guard let i = hit else {
            if streams.count >= Self.maxStreams, let oldest = streams.indices.min(by: { streams[$0].lastUse < streams[$1].lastUse }) {
                streams.remove(at: oldest)
            }
            streams.append(Stream(next: end, window: 0, lastUse: clock))
            return nil
        }
        var s = streams[i]
        let doubled = s.window == 0 ? 2 * UInt64(length) : 2 * s.window
        s.window = min(maxBytes, max(doubled, chunkBytes))
        s.next = max(s.next, end)
        s.lastUse = clock
        streams[i] = s
        let from = min(s.next, size), to = min(s.next + s.window, size)
        return from < to ? from..<to : nil
    }

    /// The range of chunk `index` (clipped to the source's end).
    package func range(ofChunk index: UInt64) -> Range<UInt64> {
        let start = index * chunkBytes
        return start..<min(start + chunkBytes, size)
    }

    /// The chunk indices `range` touches, in order.
    package func chunkIndices(_ range: Range<UInt64>) -> ClosedRange<UInt64>? {
        guard !range.isEmpty else { return nil }
        return (range.lowerBound / chunkBytes)...((range.upperBound - 1) / chunkBytes)
    }

    /// Makes room for a chunk of `bytes` by evicting arrived chunks outside `keep` (oldest
    /// first); returns whether it fits now, and the evicted chunks, whose payloads the caller frees.
    package mutating func makeRoom(for bytes: UInt64, keeping keep: Range<UInt64>) -> (fits: Bool, evicted: [Chunk]) {
        var evicted: [Chunk] = []
        // Each pass removes one chunk or stops: bounded by the chunks held.
        while heldBytes + bytes > maxBytes {
            let oldest = chunks.filter { $0.value.state != .inFlight && !$0.value.range.overlaps(keep) }
                .min { $0.value.sequence < $1.value.sequence }
            guard let oldest, let c = remove(oldest.key) else { return (false, evicted) }
            evicted.append(c)
        }
        return (true, evicted)
    }

    /// Records a request just issued for chunk `index`.
    package mutating func insert(_ index: UInt64, payload: Payload) {
        precondition(chunks[index] == nil, "chunk \(index) is already held")
        clock += 1
        let c = Chunk(range: range(ofChunk: index), payload: payload, state: .inFlight, sequence: clock)
        heldBytes += UInt64(c.range.count)
        inFlightCount += 1
        chunks[index] = c
    }

    /// Records the completion of chunk `index`'s request; a stale chunk is removed and
    /// returned (to be freed), as is a failed one: its error is not reported here, and a read
    /// that needs those bytes asks for them itself (and reports what that request says).
    package mutating func complete(_ index: UInt64, succeeded: Bool) -> Chunk? {
        guard var c = chunks[index], c.state == .inFlight else { return nil }
        if c.isStale || !succeeded { return remove(index) }
        inFlightCount -= 1
        c.state = .arrived
        chunks[index] = c
        return nil
    }

    /// Removes chunk `index` (in whatever state: the caller knows its request is over).
    @discardableResult
    package mutating func remove(_ index: UInt64) -> Chunk? {
        guard let c = chunks.removeValue(forKey: index) else { return nil }
        heldBytes -= UInt64(c.range.count)
        if c.state == .inFlight { inFlightCount -= 1 }
        return c
    }

    /// A write to `range`: arrived chunks overlapping it are removed and returned
    /// (to be freed); those in flight are marked stale.
    package mutating func invalidate(_ range: Range<UInt64>) -> [Chunk] {
        guard let indices = chunkIndices(range) else { return [] }
        var removed: [Chunk] = []
        // Bounded by the chunks held, not by the write's length.
        let touched = chunks.keys.filter { indices.contains($0) }
        for index in touched {
            if chunks[index]?.state == .inFlight {
                chunks[index]?.isStale = true
            } else if let c = remove(index) {
                removed.append(c)
            }
        }
        return removed
    }

    /// Removes every chunk (the connection is closed, or the owner goes): returned to be freed.
    package mutating func removeAll() -> [Chunk] {
        defer { chunks = [:]; heldBytes = 0; inFlightCount = 0 }
        return Array(chunks.values)
    }
}

extension ReadAhead: Sendable where Payload: Sendable {}
extension ReadAhead.Chunk: Sendable where Payload: Sendable {}
