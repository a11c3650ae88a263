import Synchronization

/// A disk image served by an NBD server (`-a nbd://HOST[:PORT]/EXPORT`,
/// `-a nbd+unix:///EXPORT?socket=PATH`, `nbds://` with TLS): the export's bytes, as a local
/// file's bytes are `RawImage`'s. A format (raw, qcow2 served as a file by `nbdkit file`, …)
/// is opened over it like over a file (`ImageOpener.openNBD`).
///
/// Read-only unless writing was asked for, and a writable open of an export the server marks
/// read-only is refused when connecting. The size is the export's and cannot change (so a qcow2
/// image on an export is opened read-only: its writer grows the file). QEMU's image locks
/// (`ImageLock`) do not apply: they are OFD locks on a local file, and the server, which owns
/// the file, is the one to arbitrate between its clients.
public final class NBDSource: ImageSource {
    public let uri: String
    public let size: UInt64
    public let isWritable: Bool
    public var displayName: String { uri }
    let connection: NBDConnection

    /// See `ImageSource.refusesImageHeaders`.
    public var refusesImageHeaders: Bool {
        get { refusingHeaders.load(ordering: .relaxed) }
        set { refusingHeaders.store(newValue, ordering: .relaxed) }
    }
    private let refusingHeaders = Atomic<Bool>(false)

    /// What block status said so far (`NBDAllocationCache`), and whether to keep asking: a
    /// server whose answer was refused (`NBDBlockStatus.Refusal`) or failed is not asked again.
    private let allocation = Mutex(NBDAllocationCache())
    private let askingBlockStatus: Atomic<Bool>

    /// Connects to `uri`; `settings` nil takes the defaults and the environment (`NBDSettings`).
    public convenience init(uri: String, writable: Bool) throws {
        try self.init(uri: uri, writable: writable, settings: NBDSettings.fromEnvironment())
    }

    package init(uri: String, writable: Bool, settings: NBDSettings) throws {
        connection = try NBDConnection(uri: uri, writable: writable, settings: settings)
        self.uri = uri
        size = connection.size
        isWritable = writable
        askingBlockStatus = Atomic(connection.canBlockStatus)
    }

    /// Whether reads still ask the server for block status (for tests).
    package var usesBlockStatus: Bool { askingBlockStatus.load(ordering: .relaxed) }

    /// The chunks read ahead now, ascending, and whether each is still in flight (for tests).
    package var readAheadChunks: [(range: Range<UInt64>, inFlight: Bool)] { connection.readAheadChunks }

    /// The server's requests in flight and size per request (for tests and the bench).
    package var settings: NBDSettings { connection.settings }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        let block = connection.minimumBlock
        if block == 1 || (offset % block == 0 && UInt64(buffer.count) % block == 0) {
            try readAligned(buffer, at: offset)
            return
        }
        // A server with a minimum block size (doc/proto.md "Block size constraints") gets the
        // aligned range around the read; the export's size is a multiple of it.
        let start = offset / block * block
        let end = (offset + UInt64(buffer.count) + block - 1) / block * block
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 64)
        defer { bounce.deallocate() }
        try readAligned(bounce, at: start)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bounce[Int(offset - start)..<Int(offset - start) + buffer.count]))
    }

    /// Reads an aligned range: the parts block status says are zeros are zero-filled, the rest
    /// is read in one pipelined read (with read-ahead: `NBDConnection+ReadAhead.swift`). Small
    /// reads, and servers without block status, read everything.
    private func readAligned(_ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        guard buffer.count >= connection.settings.blockStatusMinimumRead, askingBlockStatus.load(ordering: .relaxed) else {
            // Not asking, a small reader reads holes too: read-ahead skips only known zeros.
            return try connection.read(into: buffer, at: offset, skip: holdsKnownZeros)
        }
        let end = offset + UInt64(buffer.count), block = connection.minimumBlock
        var runs: [Range<Int>] = []
        func addData(_ from: UInt64, _ to: UInt64) {
            let range = Int(from - offset)..<Int(to - offset)
            guard !range.isEmpty else { return }
            if let last = runs.last, last.upperBound == range.lowerBound {
                runs[runs.count - 1] = last.lowerBound..<range.upperBound
            } else {
                runs.append(range)
            }
        }
        var at = offset
        // Each pass moves `at` forward by at least one extent, or reads the rest: bounded.
        while at < end {
            var known = allocation.withLock { $0.lookup(from: at, to: end) }
            if known.isEmpty {
                known = askBlockStatus(at: at, to: end)
                if known.isEmpty { addData(at, end); break }
            }
            for e in known {
                // A zero extent is skipped only in whole blocks; its unaligned edges are read.
                let zeroStart = (e.offset + block - 1) / block * block, zeroEnd = e.end / block * block
                if e.isZero, zeroStart < zeroEnd {
                    addData(e.offset, zeroStart)
                    UnsafeMutableRawBufferPointer(rebasing: buffer[Int(zeroStart - offset)..<Int(zeroEnd - offset)])
                        .initializeMemory(as: UInt8.self, repeating: 0)
                    addData(zeroEnd, e.end)
                } else {
                    addData(e.offset, e.end)
                }
            }
            at = known[known.count - 1].end
        }
        try connection.read(into: buffer, at: offset, runs: runs, skip: notKnownData)
    }

    /// Whether read-ahead should leave `range` alone: when block status is asked, unless what it
    /// said (cached: read-ahead asks the server nothing) covers the range with data only. A
    /// chunk holding zeros is read by the read that needs it, for its data alone (as
    /// `readAligned` splits it), and one not known yet is left for the read that asks about it
    /// (read ahead, a sparse export's holes past the last answer would be read as data).
    private func notKnownData(_ range: Range<UInt64>) -> Bool {
        guard askingBlockStatus.load(ordering: .relaxed) else { return false }
        let known = allocation.withLock { $0.lookup(from: range.lowerBound, to: range.upperBound) }
        return known.isEmpty || known.contains { $0.isZero } || known[known.count - 1].end < range.upperBound
    }

    /// Whether block status said some of `range` is zeros (for readers too small to ask it).
    private func holdsKnownZeros(_ range: Range<UInt64>) -> Bool {
        guard askingBlockStatus.load(ordering: .relaxed) else { return false }
        return allocation.withLock { $0.lookup(from: range.lowerBound, to: range.upperBound) }.contains { $0.isZero }
    }

    /// Asks the server about a window from `at` and caches the answer; returns what it says of
    /// `[at, end)`, or nothing (read it all) when the server's answer failed or was refused,
    /// after which block status is not asked for again. A connection that died on the request
    /// is left to fail the read that follows, with the same error every read gets.
    private func askBlockStatus(at: UInt64, to end: UInt64) -> [NBDExtent] {
        let block = connection.minimumBlock
        let start = at / block * block
        let length = min(connection.settings.blockStatusWindow, size - start)
        let generation = allocation.withLock { $0.generation }
        do {
            let extents = try connection.blockStatus(at: start, length: length)
            return allocation.withLock { cache in
                cache.insert(extents, generation: generation)
                // From the answer itself: the cache may have declined it (a write since).
                return extents.compactMap { e -> NBDExtent? in
                    let from = max(e.offset, at), to = min(e.end, end)
                    return from < to ? NBDExtent(offset: from, length: to - from, isZero: e.isZero) : nil
                }
            }
        } catch {
            askingBlockStatus.store(false, ordering: .relaxed)
            return []
        }
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard isWritable else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        if refusesImageHeaders, offset < Self.probeBytes, !buffer.isEmpty { try checkFirstSector(buffer, at: offset) }
        let block = connection.minimumBlock
        // What was zero may not be any more (from the aligned start: the bytes written).
        defer { allocation.withLock { $0.invalidate(offset / block * block ..< offset + UInt64(buffer.count)) } }
        if block == 1 || (offset % block == 0 && UInt64(buffer.count) % block == 0) {
            try connection.perform(.write(buffer), at: offset)
            return
        }
        // Read, modify, write the aligned range around an unaligned write.
        let start = offset / block * block
        let end = (offset + UInt64(buffer.count) + block - 1) / block * block
        let bounce = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - start), alignment: 64)
        defer { bounce.deallocate() }
        try connection.perform(.read(bounce), at: start)
        UnsafeMutableRawBufferPointer(rebasing: bounce[Int(offset - start)...]).copyMemory(from: buffer)
        try connection.perform(.write(UnsafeRawBufferPointer(bounce)), at: start)
    }

    public func flush() throws {
        guard isWritable else { return }
        try connection.flush()
    }
}
