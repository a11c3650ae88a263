import CNbd
#if canImport(Glibc)
import Glibc
#endif

/// Reads with read-ahead: a sequential stream of reads (`ReadAhead.observe`) keeps requests in
/// flight for the bytes after it, so the next read finds them arrived, or on their way, instead
/// of paying a round trip with nothing on the wire.
///
/// Everything happens under the connection's mutex, in the poll loop of the read being served:
/// no thread of ours drives the handle between reads. Requests keep moving anyway: the server
/// works on the ones it was sent while the reader is away, and its replies wait in the socket.
/// The requests of a read come first; read-ahead requests use what is left of
/// `settings.inFlight`, so no more than that many are ever on the wire for reads.
extension NBDConnection {
    /// A chunk read ahead: its buffer and the libnbd request filling it.
    struct Prefetch {
        let buffer: UnsafeMutableRawBufferPointer
        let cookie: Int64
    }

    /// The chunks read ahead now, ascending, and whether each is still in flight (for tests).
    var readAheadChunks: [(range: Range<UInt64>, inFlight: Bool)] {
        state.withLock { s in
            s.readAhead.chunks.values.sorted { $0.range.lowerBound < $1.range.lowerBound }.map { ($0.range, $0.state == .inFlight) }
        }
    }

    static func free(_ chunks: [ReadAhead<Prefetch>.Chunk]) {
        for c in chunks { c.payload.buffer.deallocate() }
    }

    /// Reads `runs` of `buffer` (ascending, within it; nil: all of it) from `offset`, as
    /// `perform(.read…)` does, from chunks read ahead where they hold the bytes; then keeps the
    /// window ahead of a sequential reader in flight, skipping chunks `skip` says block status
    /// knows zeros in. A chunk whose request failed is read again by the request of
    /// the read that needs it, which reports its own error as `perform` does.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, runs: [Range<Int>]? = nil,
              skip: (Range<UInt64>) -> Bool) throws {
        let total = buffer.count
        guard total > 0 else { return }
        let runs = (runs ?? [0..<total]).filter { !$0.isEmpty }
        precondition(runs.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= total }, "runs outside the buffer")
        let requestBytes = settings.requestBytes, inFlight = settings.inFlight
        try state.withLock { (s: inout State) throws(ImageError) in
            guard let h = s.handle else { throw deadError(s.failure, "NBD read", offset) }
            reapReadAhead(h, &s)
            let wanted = s.readAhead.observe(offset: offset, length: total)

            /// Copies what chunk `index` holds of `piece` (of the caller's buffer); drops the
            /// chunk once a read has taken it to its end.
            func deliver(_ index: UInt64, _ piece: Range<Int>) {
                guard let c = s.readAhead.chunks[index] else { return }
                let from = Int(offset + UInt64(piece.lowerBound) - c.range.lowerBound)
                UnsafeMutableRawBufferPointer(rebasing: buffer[piece])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: c.payload.buffer[from..<(from + piece.count)]))
                if offset + UInt64(piece.upperBound) == c.range.upperBound, let done = s.readAhead.remove(index) {
                    Self.free([done])
                }
            }
            // The caller's pieces: delivered now, waited for (in flight), or asked for here.
            var direct: [Range<Int>] = []
            var waiting: [(index: UInt64, piece: Range<Int>)] = []
            func ask(_ piece: Range<Int>) {
                if let last = direct.last, last.upperBound == piece.lowerBound {
                    direct[direct.count - 1] = last.lowerBound..<piece.upperBound
                } else {
                    direct.append(piece)
                }
            }
            for run in runs {
                let absolute = (offset + UInt64(run.lowerBound))..<(offset + UInt64(run.upperBound))
                guard !s.readAhead.chunks.isEmpty, let indices = s.readAhead.chunkIndices(absolute) else { ask(run); continue }
                for index in indices {
                    let r = s.readAhead.range(ofChunk: index).clamped(to: absolute)
                    let piece = Int(r.lowerBound - offset)..<Int(r.upperBound - offset)
                    switch s.readAhead.chunks[index] {
                    case let c? where !c.isStale && c.state == .arrived: deliver(index, piece)
                    case let c? where !c.isStale: waiting.append((index, piece))
                    default: ask(piece)
                    }
                }
            }

            /// Issues read-ahead requests for `wanted` while slots are free: chunks not held,
            /// not skipped, within the byte budget (arrived chunks no stream wants make room).
            func topUp(_ pendingCount: Int) {
                guard let wanted, let indices = s.readAhead.chunkIndices(wanted) else { return }
                let keep = offset..<wanted.upperBound
                let none = nbd_completion_callback(callback: nil, user_data: nil, free: nil)
                for index in indices {
                    guard pendingCount + s.readAhead.inFlightCount < inFlight else { return }
                    guard s.readAhead.chunks[index] == nil else { continue }
                    let r = s.readAhead.range(ofChunk: index)
                    if skip(r) { continue }
                    let (fits, evicted) = s.readAhead.makeRoom(for: UInt64(r.count), keeping: keep)
                    Self.free(evicted)
                    guard fits else { return }
                    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: r.count, alignment: 64)
                    let cookie = cnbd_aio_pread(h, chunk.baseAddress!, chunk.count, r.lowerBound, none, 0)
                    // Not sent (a dead connection): the read's own requests say why.
                    guard cookie >= 0 else { chunk.deallocate(); return }
                    s.readAhead.insert(index, payload: Prefetch(buffer: chunk, cookie: cookie))
                }
            }

            var pending: [(cookie: Int64, offset: UInt64)] = []
            var piece = 0, issued = direct.first?.lowerBound ?? 0
            var firstError: ImageError?
            let none = nbd_completion_callback(callback: nil, user_data: nil, free: nil)
            while true {
                while firstError == nil, piece < direct.count, pending.isEmpty || pending.count + s.readAhead.inFlightCount < inFlight {
                    let n = min(requestBytes, direct[piece].upperBound - issued)
                    let at = offset + UInt64(issued)
                    let cookie = cnbd_aio_pread(h, buffer.baseAddress! + issued, n, at, none, 0)
                    if cookie < 0 {
                        firstError = requestError(h, at: at, "NBD read")
                        break
                    }
                    pending.append((cookie, at))
                    issued += n
                    if issued == direct[piece].upperBound {
                        piece += 1
                        if piece < direct.count { issued = direct[piece].lowerBound }
                    }
                }
                if firstError == nil { topUp(pending.count) }
                retire(h, &pending, &firstError, "NBD read")
                reapReadAhead(h, &s)
                // Chunks waited for that arrived are delivered; those whose request failed are
                // asked for again (after every other piece: order does not matter here).
                waiting.removeAll { w in
                    switch s.readAhead.chunks[w.index] {
                    case let c? where c.state == .arrived: deliver(w.index, w.piece); return true
                    case .some: return false
                    case nil:
                        if piece == direct.count { issued = w.piece.lowerBound }
                        direct.append(w.piece)
                        return true
                    }
                }
                if pending.isEmpty {
                    if firstError != nil { break }
                    if piece == direct.count && waiting.isEmpty { break }
                    if piece < direct.count { continue }
                }
                if let failure = waitForProgress(h) {
                    // Closing the handle is what guarantees no late reply lands in a buffer.
                    giveUp(h, &s, failure)
                    throw deadError(failure, "NBD read", pending.first?.offset ?? offset)
                }
            }
            if let firstError { throw closingIfDead(h, &s, firstError) }
        }
    }

    /// Waits until no read-ahead request is in flight, at most `milliseconds`; returns whether
    /// none is left (the chunks stay, to be freed by the caller once the handle is closed).
    func drainReadAhead(_ h: OpaquePointer, _ s: inout State, milliseconds: Int) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(milliseconds)
        // Each pass waits for the state machine or until the deadline: bounded.
        while true {
            reapReadAhead(h, &s)
            if s.readAhead.inFlightCount == 0 { return true }
            let left = clock.now.duration(to: deadline)
            guard left > .zero else { return false }
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            if cnbd_poll(h, ms) < 0, cnbd_get_errno() != EINTR { return false }
        }
    }

    /// Retires the read-ahead requests that completed; failed and stale chunks are dropped.
    func reapReadAhead(_ h: OpaquePointer, _ s: inout State) {
        guard s.readAhead.inFlightCount > 0 else { return }
        let inFlight = s.readAhead.chunks.filter { $0.value.state == .inFlight }
        for (index, c) in inFlight {
            let r = cnbd_aio_command_completed(h, UInt64(c.payload.cookie))
            guard r != 0 else { continue }
            if let dropped = s.readAhead.complete(index, succeeded: r == 1) { Self.free([dropped]) }
        }
    }
}
