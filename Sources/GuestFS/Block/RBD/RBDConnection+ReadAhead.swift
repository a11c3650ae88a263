import CRbd
import Synchronization

/// Reads with read-ahead: a sequential stream of reads (`ReadAhead.observe`) keeps requests in
/// flight after it (up to `settings.inFlight` aligned `rbd_aio_read`s, within
/// `settings.readAheadBytes`), so the next read finds them arrived or on their way.
///
/// Requests are 256 KiB, not whole objects (what `rbd export` reads, ten at a time): measured
/// with bench/rbd-read.sh, 4 MiB requests took the client's peak RSS from about 64 MiB to
/// 186–296 MiB (librados's message buffers of that size, kept by glibc's per-thread arenas; `rbd
/// export` peaks at 170–290 MiB the same way), over the 64 MiB a mounted image may take, for no
/// time gained on the loopback cluster. `IMAGEMOUNT_RBD_READAHEAD_REQUEST=4096` asks for
/// object-sized requests where that memory is no concern.
///
/// librbd completes requests on its own threads, so read-ahead moves while the reader is away.
/// The table of chunks (`readAhead`) is under its own mutex, held only to look and update,
/// never while waiting: a reader that needs a chunk in flight keeps a reference to it
/// (`Prefetch`, which frees its buffer only once its request is over) and waits outside.
extension RBDConnection {
    /// A chunk read ahead: its buffer and the librbd request filling it. The buffer lives until
    /// the last reference goes, and not before the request has completed.
    final class Prefetch: @unchecked Sendable {
        // @unchecked: the buffer is written by librbd until the completion fires, then only read
        // (under `readAhead`'s mutex, or by a reader holding a reference after waiting).
        let buffer: UnsafeMutableRawBufferPointer
        let completion: rbd_completion_t

        init(buffer: UnsafeMutableRawBufferPointer, completion: rbd_completion_t) {
            self.buffer = buffer
            self.completion = completion
        }

        var isComplete: Bool { crbd_rbd_aio_is_complete(completion) == 1 }

        /// Waits for the request (bounded by librados's OSD timeout) and returns its result:
        /// bytes read, or -errno.
        func wait() -> Int {
            _ = crbd_rbd_aio_wait_for_complete(completion)
            return crbd_rbd_aio_get_return_value(completion)
        }

        deinit {
            _ = crbd_rbd_aio_wait_for_complete(completion)
            crbd_rbd_aio_release(completion)
            buffer.deallocate()
        }
    }

    /// The chunks read ahead now, ascending, and whether each is still in flight (for tests).
    var readAheadChunks: [(range: Range<UInt64>, inFlight: Bool)] {
        readAhead.withLock { ra in
            reap(&ra)
            return ra.chunks.values.sorted { $0.range.lowerBound < $1.range.lowerBound }.map { ($0.range, $0.state == .inFlight) }
        }
    }

    /// The chunk size: `settings.readAheadRequestBytes`, else the request size (256 KiB), which
    /// divides the object size (a power of two from 4 KiB, `rbd create --object-size`) or is
    /// divided by it, so no request crosses an object it need not.
    static func readAheadChunkBytes(settings: RBDSettings) -> UInt64 {
        UInt64(settings.readAheadRequestBytes ?? settings.requestBytes)
    }

    /// Reads `buffer` at `offset` as `perform(.read…)` does, from chunks read ahead where they
    /// hold the bytes, then keeps the window ahead of a sequential reader in flight. A chunk
    /// whose request failed is read again by the read that needs it, which reports its own error.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let total = buffer.count
        guard total > 0 else { return }
        let end = offset + UInt64(total)
        var direct: [Range<Int>] = []
        var waiting: [(index: UInt64, piece: Range<Int>, chunk: Prefetch)] = []
        readAhead.withLock { ra in
            reap(&ra)
            let wanted = ra.observe(offset: offset, length: total)
            if !ra.chunks.isEmpty, let indices = ra.chunkIndices(offset..<end) {
                for index in indices {
                    let r = ra.range(ofChunk: index).clamped(to: offset..<end)
                    let piece = Int(r.lowerBound - offset)..<Int(r.upperBound - offset)
                    switch ra.chunks[index] {
                    case let c? where !c.isStale && c.state == .arrived: deliver(&ra, index, piece, buffer, offset)
                    case let c? where !c.isStale: waiting.append((index, piece, c.payload))
                    default:
                        if let last = direct.last, last.upperBound == piece.lowerBound {
                            direct[direct.count - 1] = last.lowerBound..<piece.upperBound
                        } else {
                            direct.append(piece)
                        }
                    }
                }
            } else {
                direct.append(0..<total)
            }
            topUp(&ra, wanted, keeping: offset..<(wanted?.upperBound ?? end))
        }
        for piece in direct {
            try perform(.read(UnsafeMutableRawBufferPointer(rebasing: buffer[piece])), at: offset + UInt64(piece.lowerBound))
        }
        for w in waiting {
            let result = w.chunk.wait()
            let delivered = readAhead.withLock { ra -> Bool in
                if ra.chunks[w.index]?.payload === w.chunk { record(&ra, w.index, result) }
                guard let c = ra.chunks[w.index], c.payload === w.chunk, c.state == .arrived, !c.isStale else { return false }
                deliver(&ra, w.index, w.piece, buffer, offset)
                return true
            }
            if !delivered {
                try perform(.read(UnsafeMutableRawBufferPointer(rebasing: buffer[w.piece])), at: offset + UInt64(w.piece.lowerBound))
            }
        }
    }

    /// A write to `range` is done or about to be: what was read ahead of it is dropped (arrived)
    /// or marked stale (in flight). Called before the write and again after it completes, so
    /// that a chunk asked for by another thread while the write was on its way is not kept.
    func invalidateReadAhead(_ range: Range<UInt64>) {
        // The removed chunks' requests are over: releasing them frees their buffers at once.
        _ = readAhead.withLock { $0.invalidate(range) }
    }

    /// Drops every chunk, waiting for those in flight (their buffers are librbd's till then).
    func dropReadAhead() {
        _ = readAhead.withLock { $0.removeAll() }
    }

    /// Copies what chunk `index` holds of `piece` of `buffer` (which starts at `offset`); drops
    /// the chunk once a read has taken it to its end.
    private func deliver(_ ra: inout ReadAhead<Prefetch>, _ index: UInt64, _ piece: Range<Int>,
                         _ buffer: UnsafeMutableRawBufferPointer, _ offset: UInt64) {
        guard let c = ra.chunks[index] else { return }
        let from = Int(offset + UInt64(piece.lowerBound) - c.range.lowerBound)
        UnsafeMutableRawBufferPointer(rebasing: buffer[piece])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: c.payload.buffer[from..<(from + piece.count)]))
        if offset + UInt64(piece.upperBound) == c.range.upperBound { ra.remove(index) }
    }

    /// Records the result of chunk `index`'s request: bytes read (a short read, past an image
    /// that shrank under us, reads as zeros past what came back, as `perform` fills it) or -errno.
    private func record(_ ra: inout ReadAhead<Prefetch>, _ index: UInt64, _ result: Int) {
        guard let c = ra.chunks[index], c.state == .inFlight else { return }
        if result >= 0, result < c.payload.buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: c.payload.buffer[result...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
        _ = ra.complete(index, succeeded: result >= 0)
    }

    /// Records the read-ahead requests that have completed.
    private func reap(_ ra: inout ReadAhead<Prefetch>) {
        guard ra.inFlightCount > 0 else { return }
        let done = ra.chunks.filter { $0.value.state == .inFlight && $0.value.payload.isComplete }
        for (index, c) in done { record(&ra, index, c.payload.wait()) }
    }

    /// Issues read-ahead requests for `wanted`, up to `settings.inFlight` of them in flight:
    /// chunks not held, within the byte budget (arrived chunks outside `keep` make room).
    private func topUp(_ ra: inout ReadAhead<Prefetch>, _ wanted: Range<UInt64>?, keeping keep: Range<UInt64>) {
        guard let wanted, let indices = ra.chunkIndices(wanted) else { return }
        for index in indices {
            guard ra.inFlightCount < settings.inFlight else { return }
            guard ra.chunks[index] == nil else { continue }
            let r = ra.range(ofChunk: index)
            guard ra.makeRoom(for: UInt64(r.count), keeping: keep).fits else { return }
            var made: rbd_completion_t?
            guard crbd_rbd_aio_create_completion(nil, nil, &made) == 0, let completion = made else { return }
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: r.count, alignment: 64)
            guard crbd_rbd_aio_read(image, r.lowerBound, r.count, chunk.baseAddress!.assumingMemoryBound(to: CChar.self), completion) == 0 else {
                // Not issued: the read that needs these bytes asks for them and says why.
                crbd_rbd_aio_release(completion)
                chunk.deallocate()
                return
            }
            ra.insert(index, payload: Prefetch(buffer: chunk, completion: completion))
        }
    }
}
