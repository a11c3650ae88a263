import ArgumentParser
import GuestFS
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
            shows the root filesystem with the second one at /boot. The mount is read-only unless \
            --rw is given; it is always nosuid and nodev and uses default_permissions. With --rw \
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

    @Option(name: .customShort("o"),
            help: ArgumentHelp("FUSE mount option(s), comma-separated: allow_other, uid=N, gid=N, max_read=N, ... (see fuse(8)).",
                               valueName: "option"))
    var fuseOptions: [String] = []

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

    @Flag(name: .customLong("debug"), help: "Log every FUSE request and reply on stderr (use with --no-fork).")
    var debug = false

    /// Set on the background server this command starts: the pipe on which it reports
    /// readiness ("R") or an error ("E message") to the command that started it.
    @Option(name: .customLong("daemon-ready-fd"), help: .hidden)
    var daemonReadyFD: Int32?

    @Argument(help: ArgumentHelp("The host directory to mount on: it must exist, be empty and not be mounted on.",
                                 valueName: "mountdir"))
    var mountdir: String

    func validate() throws {
        _ = try serverOptions()
    }

    /// --rw, or -o rw.
    var readWrite: Bool {
        filesystems.readWrite || fuseOptions.contains { $0.split(separator: ",").contains("rw") }
    }

    func run() throws {
        if let fd = daemonReadyFD { runDaemonChild(reportingTo: fd) }
        let mountpoint = try Self.checkMountpoint(mountdir)
        if noFork {
            DebugLog.enabled = debug
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
        let session = try Session.open(image, filesystems, writable: readWrite)
        try Self.checkSizes(session.tree)
        let pid = getpid()
        if let pidFile { PidFile.write(pid, to: pidFile) }
        defer { if let pidFile { unlink(pidFile) } }
        defer { ServerRegistry.unregister(mountpoint: mountpoint) }
        let server = FuseServer(tree: session.tree, options: try serverOptions(), onReady: {
            ServerRegistry.register(mountpoint: mountpoint, pid: pid)
            ready()
        })
        try withExtendedLifetime(session) { try server.run(mountpoint: mountpoint) }
        for mount in session.tree.mounts { try mount.filesystem.close() }
    }

    /// Refuses a filesystem that claims more blocks than its device holds (a truncated image or
    /// a wrong partition), as the kernel's ext4 does ("block count exceeds size of device"):
    /// better no mount than one whose reads fail at random later.
    static func checkSizes(_ tree: MountTree) throws {
        for mount in tree.mounts {
            let fs = mount.filesystem
            let needed = fs.superblock.blocksCount * UInt64(fs.blockSize)
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
        do {
            let mountpoint = try Self.checkMountpoint(mountdir)
            try serve(on: mountpoint) { Self.signal(fd, "R") }
            Glibc.exit(0)
        } catch {
            let message: String
            switch error {
            case let e as ImageError: message = e.description
            case let e as CLIError: message = e.message
            default: message = "\(error)"
            }
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

    /// What the FUSE server is told: read-only, and `-o` split into ours (uid=, gid=) and libfuse's.
    func serverOptions() throws -> FuseServerOptions {
        var options = FuseServerOptions()
        options.readOnly = !readWrite
        options.autoUnmount = !noAutoUnmount
        options.fsname = image.images.first.map { "imagemount:" + $0.replacingCommas() } ?? "imagemount"
        for group in fuseOptions {
            for option in group.split(separator: ",").map(String.init) where !option.isEmpty {
                if option.hasPrefix("uid=") {
                    guard let v = UInt32(option.dropFirst(4)) else { throw ValidationError("-o \(option): not a number") }
                    options.uid = v
                } else if option.hasPrefix("gid=") {
                    guard let v = UInt32(option.dropFirst(4)) else { throw ValidationError("-o \(option): not a number") }
                    options.gid = v
                } else if option == "ro" {
                    if filesystems.readWrite { throw ValidationError("-o ro and --rw cannot be used together") }
                } else if option == "rw" {
                    if filesystems.readOnly { throw ValidationError("-o rw and --ro cannot be used together") }
                } else {
                    options.mountOptions.append(option)
                }
            }
        }
        return options
    }

    /// The mountpoint, made absolute: it must exist, be a directory, be empty and not already
    /// have something mounted on it.
    static func checkMountpoint(_ path: String) throws -> String {
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
        guard let dir = opendir(canonical) else {
            throw CLIError(message: "\(path): \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { throw CLIError(message: "\(path): mountpoint is not empty") }
        }
        return canonical
    }
}

extension String {
    func replacingNewlines() -> String { String(map { $0 == "\n" ? " " : $0 }) }
    /// fsname is one item of a comma-separated option list.
    func replacingCommas() -> String { String(map { $0 == "," ? "_" : $0 }) }
}
