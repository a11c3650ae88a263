import CRbd
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One open RBD image through librbd over its own librados cluster handle (Ceph's client
/// libraries, as qemu block/rbd.c uses them: rados_create2, rados_conf_*, rados_connect,
/// rados_ioctx_create, rbd_open / rbd_open_read_only).
///
/// librbd's image handle is thread-safe, so concurrent callers (the FUSE server's parallel
/// reads) each issue their own requests with no lock of ours. A large read or write is split
/// into `settings.requestBytes` requests with up to `settings.inFlight` in flight
/// (`rbd_aio_read`/`rbd_aio_write`), retired oldest first. Every wait is bounded by librados's
/// own timeouts (`RBDSettings.timeoutSeconds`): a request that runs out completes with
/// ETIMEDOUT, so no request ever outlives the caller's buffer.
///
/// Writable opens honour the exclusive-lock feature (see `acquireExclusiveLock`): the lock is
/// taken at open, in librbd's exclusive mode (rbd_lock_acquire), so that it is not handed over
/// to another client that asks for it; while it is held, other writers are refused, and an
/// open is refused while another live client holds it or an advisory lock (`rbd lock add`)
/// exists. Read-only opens (rbd_open_read_only, and every snapshot) take no lock, as QEMU's.
final class RBDConnection: @unchecked Sendable {
    // @unchecked: the three handles are set once in init and only read after; librbd's image
    // handle is safe to use from several threads at once, and the cluster and pool handles are
    // only touched in init and deinit.
    let name: RBDImageName
    let size: UInt64
    let features: UInt64
    /// The size of the image's RADOS objects (rbd_stat's obj_size, 4 MiB by default): what
    /// qemu-img info shows as its cluster_size (qemu block/rbd.c, qemu_rbd_getinfo).
    let objectSize: UInt64
    let isWritable: Bool
    let settings: RBDSettings
    private let cluster: rados_t
    private let pool: rados_ioctx_t
    let image: rbd_image_t
    private let holdsLock: Bool
    /// The chunks read ahead of sequential readers (RBDConnection+ReadAhead.swift).
    let readAhead: Mutex<ReadAhead<Prefetch>>

    /// librbd and librados return -errno: its text, and its `Errno`.
    private static func text(_ r: Int32) -> String { String(cString: strerror(-r)) }
    private static func code(_ r: Int32) -> Errno { Errno(rawValue: -r) }
    /// RBD_FEATURE_EXCLUSIVE_LOCK (rbd/features.h), written out: the header's `1ULL<<2`.
    static let exclusiveLockFeature: UInt64 = 1 << 2

    init(name: RBDImageName, client: RBDClientOptions, writable: Bool, settings: RBDSettings) throws {
        func fail(_ structure: String, _ reason: String, errno: Errno = .ioError) -> ImageError {
            ImageError(path: name.text, structure: structure, reason: reason, errno: errno)
        }
        if writable, let snapshot = name.snapshot {
            throw fail("RBD open", "snapshot '\(snapshot)' is read-only: RBD snapshots cannot be opened for writing", errno: .readOnlyFileSystem)
        }
        self.name = name
        self.settings = settings
        self.isWritable = writable

        // librbd and librados are loaded on first use, not linked (Sources/CRbd/include/CRbd.h).
        var loadError: UnsafePointer<CChar>?
        guard crbd_load(&loadError) == 0 else {
            throw fail("RBD connect", loadError.map { String(cString: $0) } ?? "librbd could not be loaded", errno: .noSuchFileOrDirectory)
        }
        // The cluster handle: client.ID, the configuration, then our settings over it.
        var handle: rados_t?
        let id = name.option("id") ?? client.id ?? "admin"
        var r = crbd_rados_create2(&handle, "ceph", "client." + id, 0)
        guard r == 0, let cluster = handle else { throw fail("RBD connect", "rados_create2: \(Self.text(r))", errno: Self.code(r)) }
        var done = false
        defer { if !done { crbd_rados_shutdown(cluster) } }
        let ours: [(String, String)] = [
            // Errors are reported by us, in one line naming the image: librados would print its
            // own to stderr (client defaults: err_to_stderr) and write a log where the
            // configuration says; this root process writes no host file of a conf's choosing.
            ("log_to_stderr", "false"), ("err_to_stderr", "false"), ("log_file", ""), ("log_to_file", "false"),
            // No admin socket: it is a listening Unix socket, which the sandbox would not let
            // the process serve (Sandbox+Syscalls.swift), and nothing here needs one.
            ("admin_socket", ""),
            ("client_mount_timeout", "\(settings.timeoutSeconds)"),
            ("rados_mon_op_timeout", "\(settings.timeoutSeconds)"),
            ("rados_osd_op_timeout", "\(settings.timeoutSeconds)"),
        ]
        // Set before the configuration is read (its parse errors stay quiet) and again after
        // (it may say otherwise).
        for (key, value) in ours { _ = crbd_rados_conf_set(cluster, key, value) }
        if let conf = name.option("conf") ?? client.configurationFile {
            r = crbd_rados_conf_read_file(cluster, conf)
            guard r == 0 else { throw fail("RBD connect", "cannot read the Ceph configuration '\(conf)': \(Self.text(r))", errno: Self.code(r)) }
        } else {
            // librados's default search path; none there is fine when the name gives mon_host.
            _ = crbd_rados_conf_read_file(cluster, nil)
        }
        // Best effort: an option this librados does not know changes nothing that matters.
        for (key, value) in ours { _ = crbd_rados_conf_set(cluster, key, value) }
        // The user's settings must take.
        var given: [(String, String)] = []
        if let keyring = name.option("keyring") ?? client.keyring { given.append(("keyring", keyring)) }
        for option in name.options where !["id", "conf", "keyring"].contains(option.key) {
            given.append((option.key, option.value))
        }
        for (key, value) in given {
            r = crbd_rados_conf_set(cluster, key, value)
            guard r == 0 else { throw fail("RBD connect", "cannot set the Ceph option \(key)=\(value): \(Self.text(r))", errno: Self.code(r)) }
        }
        // The key itself (from libvirt's secret store): librados's `key` option, which it uses
        // before any keyring (ceph's KeyRing::from_ceph_context). Its value is never shown.
        if let key = client.key {
            r = crbd_rados_conf_set(cluster, "key", key)
            guard r == 0 else { throw fail("RBD connect", "cannot set the Ceph key: \(Self.text(r))", errno: Self.code(r)) }
        }
        r = crbd_rados_connect(cluster)
        guard r == 0 else {
            let hint: String
            switch -r {
            case ENOENT: hint = " (no monitor address: give --rbd-conf FILE, or rbd://HOST[:PORT]/POOL/IMAGE)"
            case EACCES, EPERM: hint = client.key == nil ? " (authentication failed: check --rbd-id and --keyring)"
                : " (authentication failed with the key of the domain's libvirt secret)"
            // librados keeps retrying a key the monitors refuse until the mount timeout.
            case ETIMEDOUT: hint = client.key == nil ? " (no answer from the monitors within \(settings.timeoutSeconds) s)"
                : " (no answer from the monitors within \(settings.timeoutSeconds) s, or they refused the key of the domain's libvirt secret)"
            default: hint = ""
            }
            throw fail("RBD connect", "cannot connect to the Ceph cluster as client.\(id): \(Self.text(r))\(hint)", errno: Self.code(r))
        }

        var ioctx: rados_ioctx_t?
        r = crbd_rados_ioctx_create(cluster, name.pool, &ioctx)
        guard r == 0, let pool = ioctx else {
            throw fail("RBD open", -r == ENOENT ? "pool '\(name.pool)' does not exist" : "cannot open pool '\(name.pool)': \(Self.text(r))",
                       errno: Self.code(r))
        }
        defer { if !done { crbd_rados_ioctx_destroy(pool) } }
        if let namespace = name.namespace { crbd_rados_ioctx_set_namespace(pool, namespace) }

        var opened: rbd_image_t?
        if writable {
            r = crbd_rbd_open(pool, name.image, &opened, nil)
        } else if let snapshot = name.snapshot {
            r = crbd_rbd_open_read_only(pool, name.image, &opened, snapshot)
        } else {
            r = crbd_rbd_open_read_only(pool, name.image, &opened, nil)
        }
        guard r == 0, let image = opened else {
            var reason = "cannot open image '\(name.image)': \(Self.text(r))"
            if -r == ENOENT {
                reason = "image '\(name.image)' does not exist in pool '\(name.pool)'" + (name.namespace.map { ", namespace '\($0)'" } ?? "")
                // Which one is missing: the image, or its snapshot.
                var head: rbd_image_t?
                if name.snapshot != nil, crbd_rbd_open_read_only(pool, name.image, &head, nil) == 0, let head {
                    crbd_rbd_close(head)
                    reason = "image '\(name.image)' has no snapshot '\(name.snapshot ?? "")'"
                }
            }
            throw fail("RBD open", reason, errno: Self.code(r))
        }
        defer { if !done { crbd_rbd_close(image) } }
        var size: UInt64 = 0, features: UInt64 = 0
        r = crbd_rbd_get_size(image, &size)
        guard r == 0 else { throw fail("RBD open", "rbd_get_size: \(Self.text(r))", errno: Self.code(r)) }
        r = crbd_rbd_get_features(image, &features)
        guard r == 0 else { throw fail("RBD open", "rbd_get_features: \(Self.text(r))", errno: Self.code(r)) }
        var stat = rbd_image_info_t()
        r = crbd_rbd_stat(image, &stat, MemoryLayout<rbd_image_info_t>.size)
        guard r == 0 else { throw fail("RBD open", "rbd_stat: \(Self.text(r))", errno: Self.code(r)) }
        let locked = try writable ? Self.acquireExclusiveLock(image, features: features, name: name) : false

        self.cluster = cluster
        self.pool = pool
        self.image = image
        self.size = size
        self.features = features
        self.objectSize = stat.obj_size
        self.holdsLock = locked
        self.readAhead = Mutex(ReadAhead(chunkBytes: Self.readAheadChunkBytes(settings: settings),
                                         maxBytes: UInt64(settings.readAheadBytes), size: size))
        done = true
    }

    deinit {
        // Before the image goes: read-ahead requests still in flight are waited for.
        dropReadAhead()
        // rbd_close writes back librbd's cache and releases the exclusive lock.
        if holdsLock { _ = crbd_rbd_lock_release(image) }
        crbd_rbd_close(image)
        crbd_rados_ioctx_destroy(pool)
        crbd_rados_shutdown(cluster)
    }

    // MARK: Locks

    /// One holder of the image header's lock (rbd_list_lockers): librbd's exclusive lock has
    /// the tag "internal" (librbd/managed_lock, "internal" tag and "auto COOKIE" cookies); an
    /// advisory lock (`rbd lock add`) has its own.
    struct Locker: Equatable {
        var client: String
        var cookie: String
        var address: String
        var tag: String
        var isInternal: Bool { tag == "internal" }
    }

    /// Takes the exclusive lock for a writable open (or checks for advisory locks when the image
    /// has no exclusive-lock feature); returns whether the lock is held.
    ///
    /// - An advisory lock (`rbd lock add`, tag other than librbd's) refuses the open: it says
    ///   someone means to write, and it outlives its maker (`rbd lock rm` clears it).
    /// - librbd's own lock held by a live client (one still watching the header) refuses it:
    ///   librbd would otherwise ask that client to hand the lock over, and a cooperative writer
    ///   (QEMU with no explicit lock) would. A lock whose holder is gone (killed) is broken by
    ///   rbd_lock_acquire, as librbd does on a cooperative acquire.
    /// - rbd_lock_acquire in RBD_LOCK_MODE_EXCLUSIVE then takes it and disables transitions:
    ///   while we hold it, another client's request for the lock is refused (its write fails
    ///   with EROFS) and another writable imagemount is refused at open.
    private static func acquireExclusiveLock(_ image: rbd_image_t, features: UInt64, name: RBDImageName) throws -> Bool {
        func refuse(_ reason: String, errno: Errno = .resourceBusy) -> ImageError {
            ImageError(path: name.text, structure: "RBD lock", reason: reason, errno: errno)
        }
        let lockers = try listLockers(image, name: name)
        if let advisory = lockers.first(where: { !$0.isInternal }) {
            throw refuse("locked by \(advisory.client) (rbd lock add, cookie '\(advisory.cookie)', from \(advisory.address)): cannot open for writing; open it read-only, or remove the lock (rbd lock rm)")
        }
        if !lockers.isEmpty {
            let watchers = try listWatchers(image, name: name).map(normalized)
            if let live = lockers.first(where: { watchers.contains(normalized($0.address)) }) {
                throw refuse("the exclusive lock is held by \(live.client) at \(live.address), which has the image open for writing: open it read-only, or stop that client first")
            }
        }
        guard features & exclusiveLockFeature != 0 else { return false }
        let r = crbd_rbd_lock_acquire(image, RBD_LOCK_MODE_EXCLUSIVE)
        guard r == 0 else {
            let holder = (try? listLockers(image, name: name))?.first.map { " by \($0.client) at \($0.address)" } ?? ""
            throw refuse("cannot take the exclusive lock: \(text(r)); it is held\(holder)", errno: code(r))
        }
        return true
    }

    /// A Ceph entity address without its protocol prefix ("v1:", "v2:", "any:"), as lockers
    /// and watchers print it differently.
    private static func normalized(_ address: String) -> String {
        for prefix in ["v1:", "v2:", "any:"] where address.hasPrefix(prefix) { return String(address.dropFirst(prefix.count)) }
        return address
    }

    /// Most bytes one list may take (the buffers grow to what librbd asks for, up to this).
    private static let maxListBytes = 1 << 20

    static func listLockers(_ image: rbd_image_t, name: RBDImageName) throws -> [Locker] {
        var capacity = 4096
        while true {
            var exclusive: Int32 = 0
            var tagLength = capacity, clientsLength = capacity, cookiesLength = capacity, addressesLength = capacity
            var tag = [CChar](repeating: 0, count: capacity), clients = tag, cookies = tag, addresses = tag
            let n = crbd_rbd_list_lockers(image, &exclusive, &tag, &tagLength, &clients, &clientsLength, &cookies, &cookiesLength,
                                     &addresses, &addressesLength)
            let lengths = [tagLength, clientsLength, cookiesLength, addressesLength]
            if n == -Int(ERANGE), let needed = lengths.max(), needed > capacity, needed <= maxListBytes {
                capacity = needed
                continue
            }
            guard n >= 0 else {
                throw ImageError(path: name.text, structure: "RBD lock", reason: "rbd_list_lockers: \(text(Int32(clamping: n)))", errno: code(Int32(clamping: n)))
            }
            func strings(_ buffer: [CChar], _ length: Int) -> [String] {
                buffer.prefix(min(length, buffer.count)).split(separator: 0, omittingEmptySubsequences: false)
                    .map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            }
            let tagText = strings(tag, lengths[0]).first ?? ""
            let c = strings(clients, lengths[1]), k = strings(cookies, lengths[2]), a = strings(addresses, lengths[3])
            return (0..<min(n, c.count, k.count, a.count)).map { Locker(client: c[$0], cookie: k[$0], address: a[$0], tag: tagText) }
        }
    }

    private static func listWatchers(_ image: rbd_image_t, name: RBDImageName) throws -> [String] {
        var capacity = 64
        while true {
            var watchers = [rbd_image_watcher_t](repeating: rbd_image_watcher_t(), count: capacity)
            var count = capacity
            let r = crbd_rbd_watchers_list(image, &watchers, &count)
            if r == -ERANGE, count > capacity, count <= 4096 { capacity = count; continue }
            guard r == 0 else {
                throw ImageError(path: name.text, structure: "RBD lock", reason: "rbd_watchers_list: \(text(r))", errno: code(r))
            }
            let addresses = watchers.prefix(count).map { $0.addr.map { String(cString: $0) } ?? "" }
            crbd_rbd_watchers_list_cleanup(&watchers, count)
            return addresses
        }
    }

    /// Whether this client holds the exclusive lock now (rbd_is_exclusive_lock_owner).
    var ownsExclusiveLock: Bool {
        var owner: Int32 = 0
        return crbd_rbd_is_exclusive_lock_owner(image, &owner) == 0 && owner == 1
    }

    // MARK: I/O

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
            case .read: "RBD read"
            case .write: "RBD write"
            }
        }
    }

    /// Moves `transfer` at `offset` in requests of `settings.requestBytes`, up to
    /// `settings.inFlight` at once; returns when every request has completed, or throws the
    /// first failure once the others have completed (so no request still points into the
    /// caller's buffer).
    func perform(_ transfer: Transfer, at offset: UInt64) throws {
        let total = transfer.count
        guard total > 0 else { return }
        // Read-ahead of written bytes is dropped before the write and again once it is over
        // (a chunk another thread asked for meanwhile may hold the bytes from before it).
        var written: Range<UInt64>?
        if case .write = transfer { written = offset..<(offset + UInt64(total)) }
        if let written { invalidateReadAhead(written) }
        defer { if let written { invalidateReadAhead(written) } }
        let requestBytes = settings.requestBytes, inFlight = settings.inFlight
        var pending: [(completion: rbd_completion_t, offset: UInt64, position: Int, length: Int)] = []
        pending.reserveCapacity(inFlight)
        var issued = 0
        var firstError: ImageError?
        func failure(_ r: Int, at position: Int) -> ImageError {
            ImageError(path: name.text, offset: offset + UInt64(position), structure: transfer.structure,
                       reason: Self.text(Int32(clamping: r)), errno: Self.code(Int32(clamping: r)))
        }
        while true {
            while firstError == nil, pending.count < inFlight, issued < total {
                let n = min(requestBytes, total - issued)
                var made: rbd_completion_t?
                var r = crbd_rbd_aio_create_completion(nil, nil, &made)
                guard r == 0, let completion = made else { firstError = failure(Int(r), at: issued); break }
                let at = offset + UInt64(issued)
                switch transfer {
                case .read(let b): r = crbd_rbd_aio_read(image, at, n, (b.baseAddress! + issued).assumingMemoryBound(to: CChar.self), completion)
                case .write(let b): r = crbd_rbd_aio_write(image, at, n, (b.baseAddress! + issued).assumingMemoryBound(to: CChar.self), completion)
                }
                guard r == 0 else {
                    crbd_rbd_aio_release(completion)
                    firstError = failure(Int(r), at: issued)
                    break
                }
                pending.append((completion, at, issued, n))
                issued += n
            }
            guard !pending.isEmpty else { break }
            let request = pending.removeFirst()
            _ = crbd_rbd_aio_wait_for_complete(request.completion)
            let r = crbd_rbd_aio_get_return_value(request.completion)
            crbd_rbd_aio_release(request.completion)
            if r < 0 {
                if firstError == nil { firstError = failure(r, at: request.position) }
            } else if case .read(let b) = transfer, r < request.length {
                // librbd reads within the image in full; a short one (the image shrank under
                // us) reads as zeros past what came back, as QEMU's rbd driver fills it.
                UnsafeMutableRawBufferPointer(rebasing: b[(request.position + r)..<(request.position + request.length)])
                    .initializeMemory(as: UInt8.self, repeating: 0)
            }
        }
        if let firstError { throw firstError }
    }

    /// rbd_flush: librbd's cache written back and the OSDs' writes durable.
    func flush() throws {
        let r = crbd_rbd_flush(image)
        guard r == 0 else {
            throw ImageError(path: name.text, structure: "RBD flush", reason: Self.text(r), errno: Self.code(r))
        }
    }
}
