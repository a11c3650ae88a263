import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount mount` (the default command): like guestmount, the guest's tree as a FUSE mount.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount the filesystems of a disk image on a host directory (like guestmount).",
        discussion: """
            Several -m options build one tree as the guest sees it: -m /dev/sda3 -m /dev/sda2:/boot \
            shows the root filesystem with the second one at /boot, and -m /dev/sda2:/boot:ro keeps \
            that one read-only under --rw. The mount is read-only unless --rw (-w) is given (unlike \
            guestmount, whose mounts are writable unless --ro); -o rw does not make it writable \
            and is refused without --rw. It is always nosuid and nodev and uses \
            default_permissions. Every -o option is checked before any image is opened \
            (imagemount --fuse-help lists them). With --rw \
            every change (create, mkdir, rename, write, truncate, chmod, chown, xattrs, ...) goes \
            to the image; unmounting writes the filesystem's bitmaps and superblock and leaves it \
            clean for e2fsck. By default the command returns once the mount is \
            ready, and its exit status says whether mounting worked; the server keeps running in \
            the background until `imagemount unmount MOUNTDIR` (or SIGTERM). A server that dies \
            leaves no mount behind. \
            Example: imagemount -a vm.qcow2 -m /dev/sda1 --ro /mnt
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions
    @OptionGroup var overlay: OverlayOptions

    @Option(name: [.customShort("o"), .customLong("option")],
            help: ArgumentHelp("FUSE mount option(s), comma-separated; repeatable: allow_other, allow_root, uid=N, gid=N, umask=M, kernel_cache, direct_io, attr_timeout=T, entry_timeout=T, negative_timeout=T, max_read=N, fsname=NAME, subtype=NAME, nonempty, kernel flags such as noexec. --fuse-help lists them all; any other is an error.",
                               valueName: "option"))
    var fuseOptions: [String] = []

    @Option(name: .customLong("dir-cache-timeout"),
            help: ArgumentHelp("Seconds the kernel may cache names and attributes (guestmount's readdir cache timeout); -o attr_timeout=, entry_timeout=, negative_timeout= override it. Default 86400 read-only, 1 with --rw.",
                               valueName: "seconds"))
    var dirCacheTimeout: Double?

    @Flag(name: [.customShort("n"), .customLong("no-sync")],
          help: "guestmount's \"don't sync at exit\". Accepted for its scripts; it changes nothing here: every change is written to the image as it is made, and unmounting still closes the filesystem cleanly, because skipping that would leave it damaged.")
    var noSync = false

    @Flag(name: .customLong("fuse-help"), help: "List the -o options and exit.")
    var fuseHelp = false

    @Flag(name: [.customShort("f"), .customLong("no-fork")],
          help: "Stay in the foreground: serve the mount from this process until it is unmounted.")
    var noFork = false

    @Option(name: .customLong("pid-file"), help: ArgumentHelp("Write the pid of the server to FILE.", valueName: "file"))
    var pidFile: String?

    @Option(name: .customLong("fd"), help: ArgumentHelp("Write one byte to file descriptor FD when the mount is ready.", valueName: "fd"))
    var readyFD: Int32?

    @Flag(name: .customLong("no-auto-unmount"),
          help: "Leave the mount in place if the server dies (by default a helper removes it).")
    var noAutoUnmount = false

    @Flag(name: .customLong("debug"), help: "Log every FUSE request and reply on stderr (use with --no-fork; -v and -x do the same, and -x implies --no-fork, as in guestmount).")
    var debug = false

    /// Set on the background server this command starts: the pipe on which it reports
    /// readiness ("R") or an error ("E message") to the command that started it.
    @Option(name: .customLong("daemon-ready-fd"), help: .hidden)
    var daemonReadyFD: Int32?

    @Argument(help: ArgumentHelp("The host directory to mount on: it must exist, be empty and not be mounted on.",
                                 valueName: "mountdir"))
    var mountdir: String

    func validate() throws {
        if let t = dirCacheTimeout, !(t.isFinite && t >= 0) {
            throw ValidationError("--dir-cache-timeout: expected a number of seconds (0 or more)")
        }
        _ = try serverOptions()
        if !overlay.overlays.isEmpty && !readWrite { throw ValidationError("--overlay is for writing: add --rw") }
    }

    /// Only --rw makes a mount writable (-o rw is accepted only alongside it).
    var readWrite: Bool { filesystems.readWrite }

    /// -x traces and stays in the foreground, as guestmount's -x does.
    var foreground: Bool { noFork || image.global.trace }

    func run() throws {
        if let fd = daemonReadyFD { runDaemonChild(reportingTo: fd) }
        let mountpoint = try Self.checkMountpoint(mountdir, allowNonEmpty: try mountOptionList().nonempty)
        if foreground {
            DebugLog.enabled = debug || image.global.verbose || image.global.trace
            let fd = readyFD
            try serve(on: mountpoint) { if let fd { Self.signalUser(fd) } }
        } else {
            // Keys asked for on the terminal or stdin must be asked here (the server's stdin is
            // /dev/null): open the guest once to learn which volumes need one.
            let keys = try image.keyStore()
            if keys.hasFallback { _ = try Session.openGuest(image, keys: keys) }
            try Daemon.start(mountpoint: mountpoint, readyFD: readyFD, keys: keys.entries + keys.answered)
        }
    }

    /// Opens the images, mounts, and serves until unmounted; `ready` runs once the kernel's
    /// INIT has been answered.
    func serve(on mountpoint: String, ready: @escaping @Sendable () -> Void) throws {
        let session = try Session.open(image, filesystems, writable: readWrite, overlays: overlay.overlays)
        try Self.checkSizes(session.tree)
        let pid = getpid()
        if let pidFile { PidFile.write(pid, to: pidFile) }
        defer { if let pidFile { unlink(pidFile) } }
        defer { ServerRegistry.unregister(mountpoint: mountpoint) }
        var options = try serverOptions()
        // The sandbox lets the server register itself, and remove that and its pid file at exit.
        let keep = Self.sandboxDirectories(pidFile: pidFile)
        defer { keep.forEach { close($0.fd) } }
        options.sandboxRules = keep
        let server = FuseServer(tree: session.tree, options: options, onReady: {
            ServerRegistry.register(mountpoint: mountpoint, pid: pid)
            ready()
        })
        // Closed on every path (a failed mount, a signal that ends the loop, a normal unmount):
        // a writable filesystem is left clean for its fsck (ntfs_umount, ext2fs_close…).
        var failure: (any Error)?
        do { try withExtendedLifetime(session) { try server.run(mountpoint: mountpoint) } } catch { failure = error }
        for mount in session.tree.mounts {
            do { try mount.filesystem.close() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// O_PATH descriptors of the server registry's directory and of the pid file's, with the
    /// rights the sandboxed server needs there (Sandbox.Rule).
    static func sandboxDirectories(pidFile: String?) -> [Sandbox.Rule] {
        var rules: [Sandbox.Rule] = []
        mkdir(ServerRegistry.directory, 0o700)
        let registry = open(ServerRegistry.directory, hostio_o_path | O_DIRECTORY | O_CLOEXEC)
        if registry >= 0 { rules.append(.regularFiles(registry)) }
        if let pidFile {
            let parent = pidFile.contains("/") ? String(pidFile[..<(pidFile.lastIndex(of: "/") ?? pidFile.endIndex)]) : "."
            let dir = open(parent.isEmpty ? "/" : parent, hostio_o_path | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 { rules.append(.removeFiles(dir)) }
        }
        return rules
    }

    /// Refuses a filesystem that claims more blocks than its device holds (a truncated image or
    /// a wrong partition), as the kernel's ext4 does ("block count exceeds size of device"):
    /// better no mount than one whose reads fail at random later.
    static func checkSizes(_ tree: MountTree) throws {
        for mount in tree.mounts {
            let fs = mount.filesystem
            let needed = fs.declaredSize
            if needed > fs.device.size {
                throw CLIError(message: "\(mount.deviceName): filesystem (\(needed) bytes) is larger than its device (\(fs.device.size) bytes); truncated or damaged image?")
            }
        }
    }

    /// The background server: detached from the caller's session and stdio, it reports on the
    /// pipe and exits with the result.
    private func runDaemonChild(reportingTo fd: Int32) -> Never {
        _ = setsid()
        Daemon.closeInheritedDescriptors(keeping: [fd] + (image.keyFD.map { [$0] } ?? []))
        Diagnostics.relayFD = fd
        do {
            let mountpoint = try Self.checkMountpoint(mountdir, allowNonEmpty: try mountOptionList().nonempty)
            try serve(on: mountpoint) { Diagnostics.relayFD = nil; Self.signal(fd, "R") }
            Glibc.exit(0)
        } catch {
            let message: String
            switch error {
            case let e as ImageError: message = e.description
            case let e as CLIError: message = e.message
            default: message = "\(error)"
            }
            Diagnostics.relayFD = nil
            Self.signal(fd, "E " + message.replacingNewlines())
            Glibc.exit(1)
        }
    }

    /// guestmount's --fd: a single byte when the mount is ready.
    static func signalUser(_ fd: Int32) {
        var byte: UInt8 = 0x0A
        _ = Glibc.write(fd, &byte, 1)
    }

    /// Writes one line to the daemon's readiness pipe: "R", or "E message".
    static func signal(_ fd: Int32, _ line: String) {
        let text = line + "\n"
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    }

    /// The -o options, parsed (validate() has already refused the ones that do not parse).
    func mountOptionList() throws -> MountOptionList {
        do { return try MountOptionList.parse(fuseOptions) } catch { throw ValidationError(error.description) }
    }

    /// What the FUSE server is told: read-only or not, and what -o and --dir-cache-timeout ask.
    func serverOptions() throws -> FuseServerOptions {
        let list = try mountOptionList()
        if list.readOnly == true && filesystems.readWrite { throw ValidationError("-o ro and --rw cannot be used together") }
        if list.readOnly == false && filesystems.readOnly { throw ValidationError("-o rw and --ro cannot be used together") }
        if list.readOnly == false && !filesystems.readWrite {
            throw ValidationError("-o rw: imagemount mounts are read-only unless --rw (-w) is given; add --rw to write to the image")
        }
        var options = FuseServerOptions()
        options.readOnly = !readWrite
        options.autoUnmount = !noAutoUnmount
        options.fsname = list.fsname ?? image.images.first.map { "imagemount:" + $0.replacingCommas() } ?? "imagemount"
        options.subtype = list.subtype ?? "imagemount"
        options.uid = list.uid
        options.gid = list.gid
        options.umask = list.umask
        options.maxRead = list.maxRead
        options.kernelCache = list.kernelCache
        options.directIO = list.directIO
        options.attrTimeoutOverride = list.attrTimeout ?? dirCacheTimeout
        options.entryTimeoutOverride = list.entryTimeout ?? dirCacheTimeout
        options.negativeTimeoutOverride = list.negativeTimeout ?? dirCacheTimeout
        options.mountOptions = list.passThrough
        return options
    }

    /// The mountpoint, made absolute: it must exist, be a directory, be empty and not already
    /// have something mounted on it.
    static func checkMountpoint(_ path: String, allowNonEmpty: Bool = false) throws -> String {
        guard let canonical = MountInfo.canonical(path) else {
            throw CLIError(message: "\(path): mountpoint does not exist")
        }
        if MountInfo.find(mountpoint: canonical) != nil {
            throw CLIError(message: "\(path): something is already mounted there")
        }
        var st = stat()
        guard stat(canonical, &st) == 0 else {
            throw CLIError(message: "\(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw CLIError(message: "\(path): mountpoint is not a directory") }
        if allowNonEmpty { return canonical }
        guard let dir = opendir(canonical) else {
            throw CLIError(message: "\(path): \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { throw CLIError(message: "\(path): mountpoint is not empty (-o nonempty mounts over it)") }
        }
        return canonical
    }
}

extension String {
    func replacingNewlines() -> String { String(map { $0 == "\n" ? " " : $0 }) }
    /// fsname is one item of a comma-separated option list.
    func replacingCommas() -> String { String(map { $0 == "," ? "_" : $0 }) }
}
