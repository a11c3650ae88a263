import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount unmount`: like guestunmount, but it also waits for the server to exit.
struct UnmountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount",
        abstract: "Unmount a directory mounted by imagemount, and wait for its server to exit.",
        discussion: """
            Like guestunmount: retries while the mount is busy, then waits until the mount server \
            has flushed and exited, so the image can be used as soon as this returns. A mount \
            whose server died is cleared. With --fd=FD it first waits until that pipe is closed, as \
            guestunmount --fd does, to clean up after a program that may die. Exit status: 0 \
            unmounted, 1 error, 2 not mounted. \
            Example: imagemount unmount /mnt
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("retry"), help: ArgumentHelp("Try N times while the mount is busy, a second apart (default 5).", valueName: "n"))
    var retries: Int = 5

    @Flag(name: .customLong("no-retry"), help: "Do not retry when the mount is busy.")
    var noRetry = false

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Do not print an error when the directory is not mounted.")
    var quiet = false

    @Option(name: .customLong("timeout"), help: ArgumentHelp("Seconds to wait for the server to exit (default 60).", valueName: "seconds"))
    var timeout: Double = 60

    @Option(name: .customLong("fd"),
            help: ArgumentHelp("As guestunmount --fd: first wait until the pipe whose read side is FD is closed (the watched program exited), then unmount.",
                               valueName: "fd"))
    var watchFD: Int32?

    @Argument(help: ArgumentHelp("The directory to unmount.", valueName: "mountdir"))
    var mountdir: String

    func validate() throws {
        if let fd = watchFD, fd < 0 || fcntl(fd, F_GETFD) < 0 { throw ValidationError("--fd=\(fd): not an open file descriptor") }
    }

    func run() throws {
        global.apply()
        if let fd = watchFD { Self.waitForClose(fd) }
        Diagnostics.trace("unmount \(mountdir)")
        guard let path = MountInfo.canonical(mountdir) ?? Optional(mountdir),
              let mount = MountInfo.find(mountpoint: path) else {
            if !quiet { Diagnostics.line("imagemount: \(mountdir): not mounted\n") }
            throw ExitCode(2)
        }
        guard mount.fstype.hasPrefix("fuse") else {
            throw CLIError(message: "\(mountdir): is a \(mount.fstype) mount, not one of imagemount's")
        }
        let server = ServerRegistry.server(for: path)
        let attempts = noRetry ? 1 : max(1, retries)
        var lastError: Int32 = 0
        for attempt in 1...attempts {
            lastError = Self.unmount(path)
            if lastError == 0 || lastError == EINVAL { lastError = 0; break }
            guard lastError == EBUSY, attempt < attempts else { break }
            sleep(1)
        }
        if lastError == EBUSY && server == nil {
            // No live server: a stale mount nobody can use. Detach it.
            lastError = umount2(path, Int32(MNT_DETACH)) == 0 ? 0 : errno
        }
        guard lastError == 0 else {
            throw CLIError(message: "\(mountdir): cannot unmount: \(String(cString: strerror(lastError)))")
        }
        if let server, !HostProcess.waitForExit(server, timeout: timeout) {
            throw CLIError(message: "\(mountdir): unmounted, but the server (pid \(server)) has not exited after \(Int(timeout)) s")
        }
        ServerRegistry.unregister(mountpoint: path)
    }

    /// Reads `fd` until end of file (every write side closed) or an error, then closes it.
    static func waitForClose(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
        }
        close(fd)
    }

    /// Unmounts `path`: umount2 as root, fusermount3 -u otherwise. Returns 0 or an errno.
    static func unmount(_ path: String) -> Int32 {
        if geteuid() == 0 {
            return umount2(path, 0) == 0 ? 0 : errno
        }
        var pid: pid_t = 0
        let argv = ["fusermount3", "-u", "-q", path]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        guard posix_spawnp(&pid, "fusermount3", nil, nil, &cArgs, environ) == 0 else { return ENOENT }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status == 0 ? 0 : EBUSY
    }
}
