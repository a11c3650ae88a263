import CFuse
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How the mount behaves, decided by the command line (`-o` is sorted by `MountOptionList`).
struct FuseServerOptions: Sendable {
    var readOnly = true
    /// `-o uid=N` / `-o gid=N`: shown as the owner of every file instead of the guest's.
    var uid: UInt32? = nil
    var gid: UInt32? = nil
    /// `-o umask=M`: permission bits cleared from every mode shown.
    var umask: UInt32? = nil
    /// Options handed to libfuse's mount as they are (`allow_other`, context=, kernel flags…).
    var mountOptions: [String] = []
    /// The mount's source name in /proc/mounts and df (`-o fsname=`).
    var fsname = "imagemount"
    /// The mount's type is `fuse.<subtype>` (`-o subtype=`).
    var subtype = "imagemount"
    /// `-o max_read=N`: the largest read the kernel sends; init must tell libfuse the same.
    var maxRead: UInt32? = nil
    /// `-o kernel_cache` / `-o direct_io`.
    var kernelCache = false
    var directIO = false
    /// Worker threads of the session loop.
    var maxThreads: UInt32 = 16
    /// Remove the mount when the server dies (libfuse's auto_unmount, through fusermount3).
    var autoUnmount = true
    /// What the sandbox entered after mounting leaves open (Sandbox.swift); the sandbox needs
    /// auto_unmount, since a sandboxed server cannot unmount.
    var sandboxRules: [Sandbox.Rule] = []
    /// `-o attr_timeout=`, `-o entry_timeout=`, `-o negative_timeout=`, and
    /// `--dir-cache-timeout` (for all three); nil keeps `cacheTimeout`.
    var attrTimeoutOverride: Double? = nil
    var entryTimeoutOverride: Double? = nil
    var negativeTimeoutOverride: Double? = nil

    /// Attribute and entry validity. A read-only image cannot change under us, so the kernel may
    /// keep what it learnt for as long as it likes; the same holds for "no such entry".
    var cacheTimeout: Double { readOnly ? 86_400 : 1 }
    var attrTimeout: Double { attrTimeoutOverride ?? cacheTimeout }
    var entryTimeout: Double { entryTimeoutOverride ?? cacheTimeout }
    var negativeTimeout: Double { negativeTimeoutOverride ?? cacheTimeout }
}

/// The FUSE server: libfuse3's low-level API over a `MountTree` (the model is libfuse's
/// passthrough_ll.c; STYLE.md §2). Handlers live in `FuseServer+*.swift`-style files named
/// `Handlers+Concern.swift`; this file holds the state, start-up and teardown.
final class FuseServer: FuseOperations, @unchecked Sendable {
    let tree: MountTree
    let options: FuseServerOptions
    let inodes: InodeTable
    let handles = HandleTable()
    /// One buffer per concurrently running read at most, kept between reads.
    let readBuffers = ReadBufferPool(keep: 8)
    /// Which readdirplus chunks carry attributes (read-only mounts).
    let plusHint = ReaddirPlusHint()

    /// Called once, from `init`, when the kernel and the server have agreed and requests flow.
    private let onReady: @Sendable () -> Void
    private let readyOnce = Mutex(false)
    /// The mount's device number "maj:min", found after mounting (for readahead tuning).
    private let mountDevice = Mutex<String?>(nil)
    /// The bdi's read_ahead_kb, opened before the sandbox, written once after INIT.
    private let readaheadFile = Mutex<Int32?>(nil)
    private let tuned = Atomic<Bool>(false)
    /// Where the session is mounted, for the readiness probe.
    private let mountedOn = Mutex<String?>(nil)
    /// Set once a stat of the mountpoint has gone through the mount (see `probeReadiness`).
    private let ready = Atomic<Bool>(false)

    /// Most malloc arenas the serving process keeps (see `run`).
    static let mallocArenas: Int32 = 2

    init(tree: MountTree, options: FuseServerOptions, onReady: @escaping @Sendable () -> Void) {
        self.tree = tree
        self.options = options
        self.inodes = InodeTable(root: tree.root, counting: !options.readOnly)
        self.onReady = onReady
        // Damage found while serving (a bad directory block) goes to the log: a background
        // server's standard error is /dev/null.
        for mount in tree.mounts { mount.filesystem.setDamageLog { DebugLog.always("warning: \($0)") } }
        if !options.readOnly {
            // An inode unlinked while the kernel still holds it stays allocated until forget.
            let inodes = self.inodes
            for (index, mount) in tree.mounts.enumerated() {
                (mount.filesystem as? any WritableGuestFilesystem)?.setNodeInUse { inodes.contains(GuestNode(mount: index, inode: $0)) }
            }
        }
    }

    /// Mounts on `mountpoint`, serves until unmounted or signalled (SIGTERM, SIGINT, SIGHUP),
    /// then unmounts. Resources are acquired session → signal handlers → mount and released
    /// in reverse order, on every path.
    func run(mountpoint: String) throws {
        // glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
        // memory freed in one stays there: the session's worker threads held 11 MiB of freed
        // listings after a walk of a million names (bench/million-files.sh). Two arenas keep
        // the mount server's RSS bounded by its caches (mallopt(3) M_ARENA_MAX, through CFuse).
        _ = cfuse_limit_malloc_arenas(Self.mallocArenas)
        var mountOptions = ["nosuid", "nodev", "default_permissions", "fsname=\(options.fsname)", "subtype=\(options.subtype)"]
        if let maxRead = options.maxRead { mountOptions.append("max_read=\(maxRead)") }
        if options.readOnly { mountOptions.append("ro") }
        if options.autoUnmount { mountOptions.append("auto_unmount") }
        mountOptions += options.mountOptions
        let argv = ["imagemount", "-o", mountOptions.joined(separator: ",")]
        var cStrings: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var ops = OperationsTable.make()
        let session: OpaquePointer = try cStrings.withUnsafeMutableBufferPointer { buffer in
            var args = fuse_args(argc: Int32(argv.count), argv: buffer.baseAddress, allocated: 0)
            defer { fuse_opt_free_args(&args) }
            guard let se = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size,
                                            Unmanaged.passUnretained(self).toOpaque()) else {
                throw CLIError(message: "invalid FUSE option in -o \(options.mountOptions.joined(separator: ","))")
            }
            return se
        }
        defer { fuse_session_destroy(session) }

        guard fuse_set_signal_handlers(session) == 0 else {
            throw CLIError(message: "cannot install signal handlers")
        }
        defer { fuse_remove_signal_handlers(session) }

        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw CLIError(message: "\(mountpoint): cannot mount the FUSE filesystem (is fuse3 installed and /dev/fuse usable?)")
        }
        defer { fuse_session_unmount(session) }
        mountDevice.withLock { $0 = MountInfo.find(mountpoint: mountpoint)?.device }
        mountedOn.withLock { $0 = mountpoint }
        // Opened now, written after INIT (tuneReadaheadOnce): the sandbox opens no paths.
        if let device = mountDevice.withLock({ $0 }) {
            let fd = Glibc.open("/sys/class/bdi/\(device)/read_ahead_kb", O_WRONLY | O_CLOEXEC)
            if fd >= 0 { readaheadFile.withLock { $0 = fd } }
        }
        defer { readaheadFile.withLock { if let fd = $0 { close(fd) }; $0 = nil } }
        // Everything is open: requests parse guest bytes from here on (Sandbox.swift). Only
        // with auto_unmount: the sandbox may not unmount, so fusermount3's helper (started by
        // the mount) must be there to take the mount down when the server exits.
        if options.autoUnmount { try Sandbox.enter(rules: options.sandboxRules) }

        let rc = cfuse_session_loop_mt(session, options.maxThreads, 0)
        if rc < 0 && rc != -EINTR {
            DebugLog.always("session loop ended with error \(-rc)")
        }
        // libfuse can refuse the kernel's INIT after our init handler ran (it checks max_read,
        // for one); the loop then ends at once. That is a failed mount, never a quiet exit 0.
        guard ready.load(ordering: .acquiring) else {
            throw CLIError(message: "\(mountpoint): the FUSE session ended before the mount answered (the kernel's INIT was refused; check the -o options)")
        }
    }

    // MARK: init

    /// FUSE_INIT: asks for large requests, the page cache and symlink caching, then reports
    /// readiness. Kernel limits apply after this returns; `tuneReadahead` raises the one the
    /// kernel sets from the bdi default.
    func initialize(_ conn: UnsafeMutablePointer<fuse_conn_info>) {
        let c = conn.pointee
        // max_write decides the max_pages libfuse asks for (256 pages = 1 MiB on Linux ≥ 4.20).
        conn.pointee.max_write = Self.maxRequestBytes
        conn.pointee.max_readahead = Self.maxRequestBytes
        conn.pointee.max_background = 64
        conn.pointee.congestion_threshold = 48
        conn.pointee.time_gran = 1
        let wanted: UInt32 = UInt32(FUSE_CAP_CACHE_SYMLINKS) | UInt32(FUSE_CAP_ASYNC_READ) |
            UInt32(FUSE_CAP_PARALLEL_DIROPS) | UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_READDIRPLUS_AUTO) |
            UInt32(FUSE_CAP_POSIX_ACL) | UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
        conn.pointee.want |= wanted & c.capable
        // Read-only, every listing chunk comes as readdirplus and `plusHint` decides which
        // carry attributes (ReaddirPlusHint.swift). With the kernel's READDIRPLUS_AUTO
        // (fs/fuse/readdir.c fuse_use_readdirplus) only a directory's first reply and replies
        // after a lookup in it carried them: `find -ls` and `du`, which read a whole directory
        // before stating its entries, paid a lookup round trip for every name past the first
        // reply (about 200). Writable mounts keep the kernel's choice: there each entry given
        // attributes is a counted lookup in `inodes`.
        if options.readOnly { conn.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO) }
        // open() truncates when O_TRUNC arrives (Handlers+File); with or without this
        // capability that is right, since the kernel sends O_TRUNC to open only with it.
        // The umask is ours to apply (InheritedACL): a directory's default ACL replaces it, as
        // on the kernel's ext4 (posix_acl_create).
        if !options.readOnly { conn.pointee.want |= UInt32(FUSE_CAP_DONT_MASK) & c.capable }
        if !options.readOnly, getenv("IMAGEMOUNT_WRITEBACK").map({ String(cString: $0) }) == "1" {
            conn.pointee.want |= UInt32(FUSE_CAP_WRITEBACK_CACHE) & c.capable
        }
        // An unchanging image needs no revalidation of cached data on every open.
        conn.pointee.want &= ~UInt32(FUSE_CAP_AUTO_INVAL_DATA)
        // libfuse compares this with the max_read= mount option after init returns and
        // refuses INIT (EPROTO) when they differ (fuse_lowlevel.c, do_init).
        conn.pointee.max_read = options.maxRead ?? 0
        let first = readyOnce.withLock { done in
            defer { done = true }
            return !done
        }
        if first { probeReadiness() }
    }

    /// Reports readiness only once the mount really answers: a thread stats the mountpoint,
    /// which the kernel holds until INIT has been replied to and fails (ECONNREFUSED) if libfuse
    /// refused it. Only then does `onReady` run (the daemon's "R", --fd, the registry).
    private func probeReadiness() {
        let context = Unmanaged.passUnretained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<FuseServer>.fromOpaque(raw).takeUnretainedValue().confirmMount()
            return nil
        }, context)
        if rc == 0 { pthread_detach(thread) } else { confirmMount() }
    }

    private func confirmMount() {
        guard let path = mountedOn.withLock({ $0 }) else { return }
        var st = stat()
        var rc: Int32
        repeat { rc = stat(path, &st) } while rc != 0 && errno == EINTR
        guard rc == 0 else {
            DebugLog.always("\(path): the mount does not answer: \(String(cString: strerror(errno)))")
            return
        }
        ready.store(true, ordering: .releasing)
        onReady()
    }

    /// 1 MiB: the largest request (FUSE_MAX_MAX_PAGES = 256 pages) libfuse 3.14 and Linux agree on.
    static let maxRequestBytes: UInt32 = 1 << 20

    /// The kernel caps FUSE readahead at the bdi's default (128 KiB) when it processes the
    /// INIT reply; as root we may raise the bdi's read_ahead_kb afterwards so that buffered
    /// reads arrive as 1 MiB requests. Runs once, on the first request after INIT.
    func tuneReadaheadOnce() {
        guard !tuned.load(ordering: .relaxed) else { return }
        guard tuned.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        guard let fd = readaheadFile.withLock({ $0 }) else { return }
        let value = "\(Self.maxRequestBytes / 1024)\n"
        _ = value.withCString { Glibc.write(fd, $0, strlen($0)) }
    }

    // MARK: Shared helpers for handlers

    /// The guest node for a FUSE inode the kernel names, or ESTALE.
    func node(_ inode: UInt64) throws(FuseError) -> GuestNode {
        guard let node = inodes.node(inode) else { throw FuseError(Errno(rawValue: ESTALE)) }
        return node
    }

    /// `struct stat` for a guest node, as the kernel's driver would fill it.
    func attributes(_ node: GuestNode) throws(FuseError) -> stat {
        let attributes: NodeAttributes
        do { attributes = try tree.attributes(node) } catch { throw FuseError(wrapping: error) }
        var st = Attributes.stat(attributes, node: node, blockSize: tree.filesystem(of: node).blockSize,
                                 uid: options.uid, gid: options.gid)
        st.st_mode = maskedMode(st.st_mode)
        return st
    }

    /// A lookup reply for `node`, taking one lookup reference on it.
    func entry(for node: GuestNode) throws(FuseError) -> fuse_entry_param {
        let attr = try attributes(node)
        var e = fuse_entry_param()
        e.ino = inodes.lookup(node)
        e.attr = attr
        e.attr_timeout = options.attrTimeout
        e.entry_timeout = options.entryTimeout
        return e
    }
}
