import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemHostIO
import SystemSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// The sandbox the process that parses image bytes enters once it has opened everything it
/// needs (the images and their backing chains, keys, /dev/fuse, an output directory): from
/// then on a bug in a parser cannot open a host path or run a program.
///
/// - `no_new_privs` (prctl), so nothing exec'd could gain privileges, and seccomp may load;
/// - Landlock (Documentation/userspace-api/landlock.rst): every filesystem access right the
///   kernel knows is handled and none is granted, except beneath the directories of the rules
///   (copy-out's target), so no other host file (not /proc either) can be opened, created or
///   executed; descriptors opened before keep working. Nothing parsing runs on libdispatch,
///   whose worker monitor needs /proc (WorkerThreads.swift);
/// - a seccomp allowlist (Sandbox+Syscalls.swift, Sandbox+Filter.swift): the syscalls file I/O, memory, threads, signals and time
///   need; everything else (execve, socket, ptrace, mount, setuid, bpf, module loading…) fails
///   with EPERM instead of running. A process with a Ceph RBD drive may also make TCP
///   connections (librados reaches OSDs as it needs them; `Sandbox.networkClient`).
///
/// Where the kernel lacks Landlock or seccomp the missing layer is skipped with a warning
/// (`IMAGEMOUNT_SANDBOX=required` makes that an error); `IMAGEMOUNT_SANDBOX=off` disables it,
/// for debugging only.
enum Sandbox {
    static let environmentKey = "IMAGEMOUNT_SANDBOX"

    /// Rights granted beneath one directory (open, possibly O_PATH, as `fd`).
    struct Rule: Sendable {
        let fd: Int32
        let access: UInt64
        /// Everything but executing: an output directory.
        static func writable(_ fd: Int32) -> Rule { Rule(fd: fd, access: ~UInt64(1 << 0)) }
        /// Reading: copy-in's sources, a directory (files and listings beneath it) or a file.
        static func readable(_ fd: Int32, directory: Bool) -> Rule { Rule(fd: fd, access: directory ? readFile | readDirectory : readFile) }
        /// Only unlinking files: where a pid file the server removes at exit lives.
        static func removeFiles(_ fd: Int32) -> Rule { Rule(fd: fd, access: removeFile) }
        /// Only removing empty directories: the parent of inspect's private rpmdb directory
        /// (RPMScratchDirectory.swift), so that directory itself can go at the end.
        static func removeDirectories(_ fd: Int32) -> Rule { Rule(fd: fd, access: removeDirectory) }
        /// Making, writing, truncating and removing regular files: the server registry.
        static func regularFiles(_ fd: Int32) -> Rule { Rule(fd: fd, access: writeFile | removeFile | makeRegular | truncate) }
    }
    static let writeFile: UInt64 = 1 << 1, readFile: UInt64 = 1 << 2, readDirectory: UInt64 = 1 << 3, removeDirectory: UInt64 = 1 << 4, removeFile: UInt64 = 1 << 5, makeRegular: UInt64 = 1 << 8, truncate: UInt64 = 1 << 14

    static func enter(writableBeneath directories: [Int32] = []) throws {
        try enter(rules: directories.map(Rule.writable))
    }

    static func enter(rules: [Rule]) throws {
        let mode = getenv(environmentKey).map { String(cString: $0) } ?? "on"
        guard mode != "off" else { return }
        let required = mode == "required"
        // Host files a later step needs (hivex's Latin-1 converter) are loaded while they can be.
        Inspector.prepareForSandbox()
        guard hostio_set_no_new_privs() == 0 else { throw failure("no_new_privs", errno) }
        do { try restrictFilesystem(rules) } catch let e as CLIError {
            if required { throw e }
            Diagnostics.warn(e.message + "; going on without the filesystem sandbox")
        }
        do { try loadSyscallFilter() } catch let e as CLIError {
            if required { throw e }
            Diagnostics.warn(e.message + "; going on without the syscall filter")
        }
        probeForTests()
    }

    // MARK: Landlock

    /// LANDLOCK_ACCESS_FS_* (linux/landlock.h): bits 0–12 since ABI 1, REFER (13) since 2,
    /// TRUNCATE (14) since 3, IOCTL_DEV (15) since 5.
    static func handledAccess(abi: Int32) -> UInt64 {
        var bits: UInt64 = (1 << 13) - 1
        if abi >= 2 { bits |= 1 << 13 }
        if abi >= 3 { bits |= 1 << 14 }
        if abi >= 5 { bits |= 1 << 15 }
        return bits
    }

    private static func restrictFilesystem(_ rules: [Rule]) throws {
        let abi = hostio_landlock_abi()
        guard abi >= 1 else { throw failure("Landlock is not available", errno) }
        let handled = handledAccess(abi: abi)
        let ruleset = hostio_landlock_create_ruleset(handled)
        guard ruleset >= 0 else { throw failure("landlock_create_ruleset", errno) }
        defer { close(ruleset) }
        for rule in rules where hostio_landlock_allow_beneath(ruleset, rule.fd, rule.access & handled) != 0 {
            throw failure("landlock_add_rule", errno)
        }
        guard hostio_landlock_restrict_self(ruleset) == 0 else { throw failure("landlock_restrict_self", errno) }
    }

    // MARK: seccomp

    /// The syscalls this process is allowed once sandboxed: with an RBD drive open, also
    /// making TCP connections (Sandbox+Syscalls.swift, `networkClient`).
    static var syscallsForThisProcess: [(name: String, number: Int32)] {
        allowedSyscalls + (RBDSource.anyOpened ? networkClient : [])
    }

    private static func loadSyscallFilter() throws {
        let numbers = syscallsForThisProcess.map { UInt32(truncatingIfNeeded: $0.number) }
        // Our own BPF program (Sandbox+Filter.swift); libseccomp's generator when it cannot be.
        if let program = filterProgram(allowing: numbers, arch: seccomp_shim_audit_arch, deny: seccomp_shim_ret_errno(UInt16(EPERM))) {
            // librados starts its threads when it connects, before the sandbox: the filter
            // must hold for them too (their syscalls are in the table), so it is installed on
            // every thread at once. Landlock has no such flag (ABI < 8): those threads, which
            // run Ceph's messenger and never image parsers, keep the filesystem view they had.
            let rc = program.withUnsafeBufferPointer {
                RBDSource.anyOpened ? Int32(clamping: seccomp_shim_install_all_threads($0.baseAddress, UInt16($0.count)))
                                    : seccomp_shim_install($0.baseAddress, UInt16($0.count))
            }
            guard rc == 0 else { throw failure("seccomp filter", rc > 0 ? ESRCH : errno) }
            return
        }
        guard let filter = seccomp_init(seccomp_shim_act_errno(UInt16(EPERM))) else {
            throw failure("seccomp_init", ENOMEM)
        }
        defer { seccomp_release(filter) }
        for number in numbers {
            let rc = seccomp_rule_add_array(filter, SCMP_ACT_ALLOW, Int32(number), 0, nil)
            guard rc == 0 else { throw failure("seccomp_rule_add \(number)", -rc) }
        }
        if RBDSource.anyOpened { _ = seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1) }
        let rc = seccomp_load(filter)
        guard rc == 0 else { throw failure("seccomp_load", -rc) }
    }

    private static func failure(_ what: String, _ code: Int32) -> CLIError {
        CLIError(message: "sandbox: \(what): \(String(cString: strerror(code)))")
    }

    // MARK: The tests' probe

    /// `IMAGEMOUNT_SANDBOX_PROBE=PATH[:PATH...]`: once inside, try to open each PATH and to run
    /// /bin/true, and say on stderr what happened. The test of the sandbox reads this; nothing
    /// else sets it.
    private static func probeForTests() {
        guard let probe = getenv("IMAGEMOUNT_SANDBOX_PROBE").map({ String(cString: $0) }) else { return }
        for path in probe.split(separator: ":").map(String.init) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            let openResult = fd >= 0 ? "opened" : "denied (\(String(cString: strerror(errno))))"
            if fd >= 0 { close(fd) }
            Diagnostics.warn("sandbox probe: open \(path): \(openResult)")
        }
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        execv("/bin/true", &argv)
        Diagnostics.warn("sandbox probe: exec /bin/true: denied (\(String(cString: strerror(errno))))")
    }
}
