import CNbd
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One connection to an NBD server through libnbd (libguestfs's and qemu's client library;
/// the protocol is NetworkBlockDevice/nbd: doc/proto.md).
///
/// Every request goes through libnbd's asynchronous calls (`nbd_aio_pread`, `nbd_aio_pwrite`,
/// `nbd_aio_flush`) and our own `nbd_poll` loop, for two reasons: a large read is split into
/// `settings.requestBytes` requests with up to `settings.inFlight` of them on the wire at once,
/// and every wait is bounded by `settings.timeoutMilliseconds` (libnbd's blocking calls wait
/// forever for a server that stops answering). A server that goes away (EOF, reset) moves the
/// handle to its dead state at once and every request in flight completes with an error.
///
/// libnbd handles are thread-safe but serialize their calls on one lock; we hold our own mutex
/// around each whole transfer instead, so that our poll loop is the only one driving the
/// handle. Concurrent callers (the FUSE server's parallel reads) take turns, each with its own
/// requests pipelined. After a timeout or a dead connection the handle is closed under that
/// mutex: libnbd then never touches a caller's buffer again, and later calls fail at once.
final class NBDConnection: Sendable {
    let uri: String
    let size: UInt64
    let isReadOnly: Bool
    let canFlush: Bool
    /// The server's minimum block size (1 when it gives none): requests are aligned to it.
    let minimumBlock: UInt64
    /// Whether the server agreed to the `base:allocation` context (and it was asked for), so
    /// that `blockStatus` may be called.
    let canBlockStatus: Bool
    let settings: NBDSettings

    /// `@unchecked`: the libnbd handle and the read-ahead buffers are C pointers, used only
    /// inside `state.withLock`.
    struct State: @unchecked Sendable {
        var handle: OpaquePointer?
        /// Why the connection was given up, once it was.
        var failure: String?
        /// The chunks read ahead of sequential readers (NBDConnection+ReadAhead.swift).
        var readAhead: ReadAhead<Prefetch>
    }
    let state: Mutex<State>

    /// libnbd's message for the last failed call on this thread (nbd_get_error), one line.
    static func lastError() -> String {
        guard let text = cnbd_get_error() else { return "unknown libnbd error" }
        return String(cString: text).split(whereSeparator: \.isNewline).first.map(String.init) ?? "unknown libnbd error"
    }

    /// libnbd's errno for the last failed call on this thread (nbd_get_errno), EIO when none.
    private static func lastErrno() -> Errno {
        let code = cnbd_get_errno()
        return code == 0 ? .ioError : Errno(rawValue: code)
    }

    /// Connects to `uri` (checked by `NBDURI.check`), restricted to TCP and Unix sockets and
    /// to URIs that read no local files, and waits for the handshake at most the timeout.
    init(uri: String, writable: Bool, settings: NBDSettings) throws {
        func fail(_ reason: String, errno: Errno = .ioError) -> ImageError {
            ImageError(path: uri, structure: "NBD connect", reason: reason, errno: errno)
        }
        try NBDURI.check(uri)
        // libnbd is loaded on first use, not linked (Sources/CNbd/include/CNbd.h says why).
        var loadError: UnsafePointer<CChar>?
        guard cnbd_load(&loadError) == 0 else {
            throw fail(loadError.map { String(cString: $0) } ?? "libnbd could not be loaded", errno: .noSuchFileOrDirectory)
        }
        guard let h = cnbd_create() else { throw fail("nbd_create: \(Self.lastError())", errno: .noMemory) }
        var connected = false
        defer { if !connected { cnbd_close(h) } }
        // An image-named URI never reaches here (backing files over NBD are refused), but even
        // the user's own URI may not make libnbd run a program (nbd_connect_command, ssh),
        // open a vsock, or read a local file through tls-psk-file= or tls-certificates= (nbd_connect_uri(3),
        // "Disable URI features").
        guard cnbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX) == 0,
              cnbd_set_uri_allow_local_file(h, false) == 0,
              cnbd_set_handle_name(h, "imagemount") == 0 else {
            throw fail(Self.lastError())
        }
        // Asked for before the handshake, which negotiates it (doc/proto.md
        // "NBD_OPT_SET_META_CONTEXT"); a server without structured replies or the context just
        // leaves it out, and reads are plain reads.
        if settings.blockStatus, cnbd_add_meta_context(h, NBDBlockStatus.context) != 0 {
            throw fail(Self.lastError())
        }
        if NBDURI.requiresTLS(uri), cnbd_supports_tls(h) != 1 {
            throw fail("TLS (nbds://) is not supported by this build of libnbd", errno: .notSupported)
        }
        guard cnbd_aio_connect_uri(h, uri) == 0 else { throw fail(Self.lastError(), errno: Self.lastErrno()) }
        while cnbd_aio_is_connecting(h) == 1 {
            let r = cnbd_poll(h, settings.timeoutMilliseconds)
            if r == 0 { throw fail("no answer from the server within \(settings.timeoutMilliseconds / 1000) s", errno: .timedOut) }
            if r < 0, cnbd_get_errno() != EINTR { throw fail(Self.lastError(), errno: Self.lastErrno()) }
        }
        guard cnbd_aio_is_ready(h) == 1 else { throw fail("the server closed the connection during the handshake: \(Self.lastError())") }
        let size = cnbd_get_size(h)
        guard size >= 0 else { throw fail("nbd_get_size: \(Self.lastError())") }
        let readOnly = cnbd_is_read_only(h) == 1
        if writable && readOnly {
            throw fail("the export is read-only (the server says so); open it without --rw, or serve it writable", errno: .readOnlyFileSystem)
        }
        // 0 when the server gives no block size constraints (doc/proto.md "Block size constraints").
        let minimum = cnbd_get_block_size(h, LIBNBD_SIZE_MINIMUM)
        let maximum = cnbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM)
        guard minimum >= 0, minimum <= 65536, minimum == 0 || minimum & (minimum - 1) == 0 else {
            throw fail("the server's minimum block size \(minimum) is not a power of two up to 64 KiB", errno: .notSupported)
        }
        var tuned = settings
        if maximum > 0 { tuned.requestBytes = max(Int(max(minimum, 1)), min(tuned.requestBytes, Int(clamping: maximum))) }
        self.uri = uri
        self.size = UInt64(size)
        self.isReadOnly = readOnly
        self.canFlush = cnbd_can_flush(h) == 1
        self.minimumBlock = UInt64(max(minimum, 1))
        self.canBlockStatus = settings.blockStatus && cnbd_can_meta_context(h, NBDBlockStatus.context) == 1
        self.settings = tuned
        // Chunks are requests: a whole number of the server's blocks each.
        let chunk = UInt64(tuned.requestBytes) / self.minimumBlock * self.minimumBlock
        self.state = Mutex(State(handle: h, readAhead: ReadAhead(chunkBytes: chunk, maxBytes: UInt64(tuned.readAheadBytes), size: UInt64(size))))
        connected = true
    }

    deinit {
        state.withLock { s in
            if let h = s.handle {
                // A polite NBD_CMD_DISC, not waited for; then the socket is closed. Read-ahead
                // still in flight is retired first, as nbd_aio_disconnect(3) recommends (nbdkit
                // 1.32 aborts, "raw_send_socket: Assertion `sock >= 0' failed", on a DISC with
                // requests in flight); a server that has not answered within 2 s gets the
                // socket closed without one.
                if drainReadAhead(h, &s, milliseconds: 2000) { _ = cnbd_aio_disconnect(h, 0) }
                cnbd_close(h)
                s.handle = nil
            }
            // Closed: libnbd writes into no buffer of ours any more.
            Self.free(s.readAhead.removeAll())
        }
    }

    /// One transfer: a read into, or a write from, a caller's buffer.
    enum Transfer {
        case read(UnsafeMutableRawBufferPointer)
        case write(UnsafeRawBufferPointer)
        var count: Int {
            switch self {
            case .read(let b): b.count
            case .write(let b): b.count
            }
        }
        var structure: String {
            switch self {
            case .read: "NBD read"
            case .write: "NBD write"
            }
        }
    }

    /// Moves `transfer` at `offset` in requests of `settings.requestBytes`, up to
    /// `settings.inFlight` at once; returns when every request has completed, or throws the
    /// first failure (after the others have completed or the connection was closed, so that
    /// no request still points into the caller's buffer). `runs` (ascending, within the
    /// buffer) limits it to those parts of the buffer, pipelined together: the data between
    /// the zero extents of a sparse read.
    func perform(_ transfer: Transfer, at offset: UInt64, runs: [Range<Int>]? = nil) throws {
        let total = transfer.count
        let runs = (runs ?? [0..<total]).filter { !$0.isEmpty }
        guard total > 0, !runs.isEmpty else { return }
        precondition(runs.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= total }, "runs outside the buffer")
        let requestBytes = settings.requestBytes, inFlight = settings.inFlight
        try state.withLock { (s: inout State) throws(ImageError) in
            guard let h = s.handle else { throw deadError(s.failure, transfer.structure, offset) }
            if case .write = transfer {
                // What was read ahead of these bytes is older than them now (in flight: the
                // server may answer the read before or after the write).
                Self.free(s.readAhead.invalidate(offset..<(offset + UInt64(total))))
            }
            var run = 0, issued = runs[0].lowerBound
            var pending: [(cookie: Int64, offset: UInt64)] = []
            pending.reserveCapacity(inFlight)
            var firstError: ImageError?
            let none = nbd_completion_callback(callback: nil, user_data: nil, free: nil)
            while true {
                while firstError == nil, pending.count < inFlight, run < runs.count {
                    let n = min(requestBytes, runs[run].upperBound - issued)
                    let at = offset + UInt64(issued)
                    let cookie: Int64
                    switch transfer {
                    case .read(let b): cookie = cnbd_aio_pread(h, b.baseAddress! + issued, n, at, none, 0)
                    case .write(let b): cookie = cnbd_aio_pwrite(h, b.baseAddress! + issued, n, at, none, 0)
                    }
                    if cookie < 0 {
                        firstError = requestError(h, at: at, transfer.structure)
                        break
                    }
                    pending.append((cookie, at))
                    issued += n
                    if issued == runs[run].upperBound {
                        run += 1
                        if run < runs.count { issued = runs[run].lowerBound }
                    }
                }
                retire(h, &pending, &firstError, transfer.structure)
                if pending.isEmpty {
                    if firstError != nil || run == runs.count { break }
                    continue
                }
                if let failure = waitForProgress(h) {
                    // Closing the handle is what guarantees no late reply lands in the buffer.
                    giveUp(h, &s, failure)
                    throw deadError(failure, transfer.structure, pending.first?.offset ?? offset)
                }
            }
            if let firstError { throw closingIfDead(h, &s, firstError) }
        }
    }

    /// The error of one request: libnbd's message; on a connection that died, EIO (libnbd says
    /// EINVAL, "invalid state", for a request issued on a dead handle) and says so.
    func requestError(_ h: OpaquePointer, at offset: UInt64, _ structure: String) -> ImageError {
        let message = Self.lastError(), code = Self.lastErrno()
        if cnbd_aio_is_dead(h) == 1 || cnbd_aio_is_closed(h) == 1 {
            return ImageError(path: uri, offset: offset, structure: structure,
                              reason: "the connection to the server was lost (\(message))", errno: .ioError)
        }
        return ImageError(path: uri, offset: offset, structure: structure, reason: message, errno: code)
    }

    /// Sends NBD_CMD_FLUSH and waits for it (a server without flush support needs none).
    func flush() throws {
        guard canFlush else { return }
        try state.withLock { (s: inout State) throws(ImageError) in
            guard let h = s.handle else { throw deadError(s.failure, "NBD flush", nil) }
            let cookie = cnbd_aio_flush(h, nbd_completion_callback(callback: nil, user_data: nil, free: nil), 0)
            guard cookie >= 0 else { throw ImageError(path: uri, structure: "NBD flush", reason: Self.lastError(), errno: Self.lastErrno()) }
            try awaitCompletion(h, &s, cookie: cookie, at: nil, "NBD flush")
        }
    }

    /// Whether the handle is still open (not given up after a timeout or a lost connection).
    var isOpen: Bool { state.withLock { $0.handle != nil } }

    /// What the extent callback is handed: the first `base:allocation` answer, bounded.
    /// `@unchecked`: libnbd calls the callback only from inside our `nbd_poll`, under `state`.
    private final class ExtentAnswer: @unchecked Sendable {
        var start: UInt64?
        var entries: [UInt32] = []
    }

    /// NBD_CMD_BLOCK_STATUS for `length` bytes at `offset` in the `base:allocation` context,
    /// waited for as reads are (the same timeout; a timeout or a lost connection closes the
    /// handle). Returns the extents inside the request (`NBDBlockStatus.extents`), or throws:
    /// an `ImageError` when the request failed, a `Refusal` when the answer is not believed.
    func blockStatus(at offset: UInt64, length: UInt64) throws -> [NBDExtent] {
        let answer = ExtentAnswer()
        try state.withLock { (s: inout State) throws(ImageError) in
            guard let h = s.handle else { throw deadError(s.failure, "NBD block status", offset) }
            // libnbd owns a reference until it calls `free` (also when the call fails).
            let callback = nbd_extent_callback(
                callback: { user, context, start, entries, count, _ in
                    guard let user, let context, let entries else { return 0 }
                    let answer = Unmanaged<ExtentAnswer>.fromOpaque(user).takeUnretainedValue()
                    // One context was asked for; only its first answer is kept (a second
                    // chunk for it would be a protocol error, which libnbd reports).
                    guard answer.start == nil, String(cString: context) == NBDBlockStatus.context else { return 0 }
                    answer.start = start
                    let kept = min(count, 2 * NBDBlockStatus.maxDescriptors)
                    answer.entries = Array(UnsafeBufferPointer(start: entries, count: kept - kept % 2))
                    return 0
                },
                user_data: Unmanaged.passRetained(answer).toOpaque(),
                free: { user in if let user { Unmanaged<ExtentAnswer>.fromOpaque(user).release() } })
            let none = nbd_completion_callback(callback: nil, user_data: nil, free: nil)
            let cookie = cnbd_aio_block_status(h, length, offset, callback, none, 0)
            guard cookie >= 0 else { throw requestError(h, at: offset, "NBD block status") }
            try awaitCompletion(h, &s, cookie: cookie, at: offset, "NBD block status")
        }
        guard let start = answer.start else { throw NBDBlockStatus.Refusal.nothingInside }
        return try NBDBlockStatus.extents(entries: answer.entries, start: start,
                                          request: offset..<(offset + length), exportSize: size)
    }

    /// Waits for one request (a flush, a block status) as `perform` waits for its own: bounded
    /// by the timeout, the handle given up when the server is gone.
    private func awaitCompletion(_ h: OpaquePointer, _ s: inout State, cookie: Int64, at offset: UInt64?,
                                 _ structure: String) throws(ImageError) {
        var pending: [(cookie: Int64, offset: UInt64)] = [(cookie, offset ?? 0)]
        var firstError: ImageError?
        while true {
            retire(h, &pending, &firstError, structure)
            if pending.isEmpty { break }
            if let failure = waitForProgress(h) {
                giveUp(h, &s, failure)
                throw deadError(failure, structure, offset)
            }
        }
        if let firstError { throw closingIfDead(h, &s, firstError) }
    }

    /// Closes the handle for good: later calls fail with `failure` without reaching libnbd.
    func giveUp(_ h: OpaquePointer, _ s: inout State, _ failure: String) {
        cnbd_close(h)
        s.handle = nil
        s.failure = failure
        // Closed: libnbd completes no request into these buffers any more.
        Self.free(s.readAhead.removeAll())
    }

    /// `error`, after closing the handle if the connection died with it (a dead handle stays
    /// dead: later calls then fail at once).
    func closingIfDead(_ h: OpaquePointer, _ s: inout State, _ error: ImageError) -> ImageError {
        if cnbd_aio_is_dead(h) == 1 || cnbd_aio_is_closed(h) == 1 { giveUp(h, &s, error.reason) }
        return error
    }

    /// Retires the completed requests of `pending`, keeping the first failure.
    func retire(_ h: OpaquePointer, _ pending: inout [(cookie: Int64, offset: UInt64)],
                        _ firstError: inout ImageError?, _ structure: String) {
        var failed: ImageError?
        pending.removeAll { request in
            switch cnbd_aio_command_completed(h, UInt64(request.cookie)) {
            case 0: return false
            case 1: return true
            default:
                if failed == nil { failed = requestError(h, at: request.offset, structure) }
                return true
            }
        }
        if firstError == nil { firstError = failed }
    }

    /// One `nbd_poll`; nil when the state machine moved on, else why the connection is given up
    /// (a timeout, or a dead connection whose requests libnbd will not complete).
    func waitForProgress(_ h: OpaquePointer) -> String? {
        let r = cnbd_poll(h, settings.timeoutMilliseconds)
        if r == 0 { return "no reply from the server within \(settings.timeoutMilliseconds / 1000) s" }
        if r < 0 {
            if cnbd_get_errno() == EINTR { return nil }
            if cnbd_aio_is_dead(h) == 1 || cnbd_aio_is_closed(h) == 1 { return "the connection to the server was lost: \(Self.lastError())" }
            return Self.lastError()
        }
        return nil
    }

    func deadError(_ failure: String?, _ structure: String, _ offset: UInt64?) -> ImageError {
        ImageError(path: uri, offset: offset, structure: structure,
                   reason: failure ?? "the connection to the server is closed", errno: .ioError)
    }
}
