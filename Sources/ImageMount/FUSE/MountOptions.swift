import CFuse
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// The `-o` options of `imagemount mount`, checked and sorted before anything is opened.
///
/// guestmount hands `-o` to libfuse's *high-level* API, which implements kernel_cache,
/// attr_timeout=, entry_timeout=, negative_timeout=, direct_io, uid=, gid= and umask= itself
/// (lib/fuse.c). The low-level API we use leaves those to the filesystem, so the server applies
/// them (`FuseServerOptions`); the options of libfuse's mount (lib/mount.c: allow_other,
/// allow_root, max_read=, fsname=, subtype=, default_permissions, and the kernel's generic
/// flags) go to `fuse_session_new` as given. Anything else is refused here with one line, so a
/// mistyped option never gets as far as a half-started server.
struct MountOptionList: Equatable {
    var uid: UInt32?
    var gid: UInt32?
    var umask: UInt32?
    var attrTimeout: Double?
    var entryTimeout: Double?
    var negativeTimeout: Double?
    var kernelCache = false
    var directIO = false
    /// libfuse 2's nonempty: allow a mountpoint that is not empty (libfuse 3 always allows it).
    var nonempty = false
    var maxRead: UInt32?
    var fsname: String?
    var subtype: String?
    /// `ro` or `rw` as given (nil when neither was).
    var readOnly: Bool?
    /// For libfuse's mount, in the order given.
    var passThrough: [String] = []

    /// One line per option for --fuse-help and the man page: spelling and meaning.
    static let documented: [(option: String, meaning: String)] = [
        ("allow_other", "let every user see the mount (libfuse; root, or user_allow_other in /etc/fuse.conf)"),
        ("allow_root", "let root see the mount as well as its owner (libfuse)"),
        ("default_permissions", "the kernel checks file modes (always on)"),
        ("uid=N", "show every file as owned by uid N"),
        ("gid=N", "show every file as owned by gid N"),
        ("umask=M", "clear the octal permission bits M from every mode shown"),
        ("kernel_cache", "keep the page cache between opens (always on for read-only mounts)"),
        ("direct_io", "bypass the page cache: every read and write reaches the server"),
        ("attr_timeout=T", "seconds the kernel may cache attributes (default 86400 read-only, 1 with --rw)"),
        ("entry_timeout=T", "seconds the kernel may cache names (same defaults)"),
        ("negative_timeout=T", "seconds the kernel may cache \"no such file\" (same defaults)"),
        ("max_read=N", "largest read request in bytes (libfuse; at least 4096)"),
        ("fsname=NAME", "the mount's source in /proc/mounts and df (default imagemount:IMAGE)"),
        ("subtype=NAME", "the mount's type is fuse.NAME (default fuse.imagemount)"),
        ("nonempty", "allow a mountpoint that is not empty (libfuse 2's option; accepted)"),
        ("ro", "read-only (the default; with --rw it is an error)"),
        ("rw", "read-write: only together with --rw (-w), which is what makes a mount writable"),
        ("noatime, nodiratime, relatime, strictatime, atime, diratime, norelatime, nostrictatime, lazytime, nolazytime", "kernel mount flags, passed on (the server never writes atimes)"),
        ("exec, noexec, sync, async, dirsync", "kernel mount flags, passed on"),
        ("context=, fscontext=, defcontext=, rootcontext=", "SELinux labels, passed to the kernel"),
    ]

    /// Kernel mount flags libfuse passes to mount(2) (lib/mount.c, mount_flags).
    static let kernelFlags: Set<String> = [
        "exec", "noexec", "async", "sync", "dirsync", "atime", "noatime", "diratime", "nodiratime",
        "lazytime", "nolazytime", "relatime", "norelatime", "strictatime", "nostrictatime",
    ]
    /// libfuse mount options passed as they are.
    static let libfuseFlags: Set<String> = ["allow_other", "allow_root", "default_permissions"]
    static let libfusePrefixes = ["context=", "fscontext=", "defcontext=", "rootcontext="]

    /// Parses every `-o` argument (each a comma-separated list).
    static func parse(_ groups: [String]) throws(MountOptionError) -> MountOptionList {
        var list = MountOptionList()
        for group in groups {
            for option in group.split(separator: ",").map(String.init) where !option.isEmpty {
                try list.add(option)
            }
        }
        return list
    }

    private mutating func add(_ option: String) throws(MountOptionError) {
        let (key, value) = Self.split(option)
        switch key {
        case "uid": uid = try Self.number(option, value, radix: 10)
        case "gid": gid = try Self.number(option, value, radix: 10)
        case "umask":
            let mask = try Self.number(option, value, radix: 8)
            guard mask <= 0o7777 else { throw MountOptionError("-o \(option): umask is at most 7777 (octal)") }
            umask = mask
        case "attr_timeout": attrTimeout = try Self.seconds(option, value)
        case "entry_timeout": entryTimeout = try Self.seconds(option, value)
        case "negative_timeout": negativeTimeout = try Self.seconds(option, value)
        case "max_read":
            let n = try Self.number(option, value, radix: 10)
            guard n >= 4096 else { throw MountOptionError("-o \(option): max_read must be at least 4096") }
            maxRead = n
        case "fsname", "subtype":
            guard let value, !value.isEmpty, !value.contains(where: { $0 == " " || $0 == "\\" }) else {
                throw MountOptionError("-o \(option): \(key)= needs a name without spaces or backslashes")
            }
            if key == "fsname" { fsname = value } else { subtype = value }
        case "kernel_cache": try Self.flag(option, value); kernelCache = true
        case "direct_io": try Self.flag(option, value); directIO = true
        case "nonempty": try Self.flag(option, value); nonempty = true
        case "ro": try Self.flag(option, value); readOnly = true
        case "rw": try Self.flag(option, value); readOnly = false
        case "suid", "dev":
            throw MountOptionError("-o \(option): imagemount mounts are always nosuid and nodev")
        case "nosuid", "nodev": try Self.flag(option, value)  // always set
        case _ where Self.kernelFlags.contains(key) || Self.libfuseFlags.contains(key):
            try Self.flag(option, value)
            passThrough.append(option)
        case _ where Self.libfusePrefixes.contains(where: option.hasPrefix):
            passThrough.append(option)
        default:
            throw MountOptionError("-o \(option): unknown FUSE option (imagemount --fuse-help lists them)")
        }
    }

    private static func split(_ option: String) -> (String, String?) {
        guard let eq = option.firstIndex(of: "=") else { return (option, nil) }
        return (String(option[..<eq]), String(option[option.index(after: eq)...]))
    }

    private static func flag(_ option: String, _ value: String?) throws(MountOptionError) {
        if value != nil { throw MountOptionError("-o \(option): this option takes no value") }
    }

    private static func number(_ option: String, _ value: String?, radix: Int) throws(MountOptionError) -> UInt32 {
        guard let value, let n = UInt32(value, radix: radix) else {
            throw MountOptionError("-o \(option): expected \(radix == 8 ? "an octal" : "a") number")
        }
        return n
    }

    private static func seconds(_ option: String, _ value: String?) throws(MountOptionError) -> Double {
        guard let value, let t = Double(value), t.isFinite, t >= 0 else {
            throw MountOptionError("-o \(option): expected a number of seconds (0 or more)")
        }
        return t
    }

    /// --fuse-help: our table, then libfuse's own list of its low-level options.
    static func printHelp() {
        print("imagemount: FUSE options, given with -o OPTION[,OPTION...] (-o may be repeated):")
        for (option, meaning) in documented {
            print("    -o \(option)")
            print("        \(meaning)")
        }
        print("\nlibfuse \(String(cString: fuse_pkgversion())) low-level options:")
        fflush(nil)
        fuse_lowlevel_help()
        fflush(nil)
    }
}

/// A `-o` option that cannot be used, as one line.
struct MountOptionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension FuseServer {
    /// What `open` and `create` tell the kernel about a new handle: keep the page cache when the
    /// data cannot change under it (a read-only filesystem) or `-o kernel_cache` says so; bypass
    /// it with `-o direct_io`.
    func applyOpenOptions(_ info: inout fuse_file_info, _ node: GuestNode) {
        if options.directIO {
            info.direct_io = 1
        } else if options.kernelCache || tree.isReadOnly(node) {
            info.keep_cache = 1
        }
    }

    /// `-o umask=`: the permission bits it names cleared from `mode`, as libfuse's high-level
    /// API does (lib/fuse.c, `set_stat`).
    func maskedMode(_ mode: mode_t) -> mode_t {
        guard let umask = options.umask else { return mode }
        return mode & ~mode_t(umask)
    }
}
