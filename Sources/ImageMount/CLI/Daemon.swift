import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// Starting the mount server in the background, without guestmount's race.
///
/// fork() after threads exist is unsafe in Swift, so the command re-executes itself
/// (posix_spawn of /proc/self/exe) with the same arguments plus `--daemon-ready-fd 3`, stdio on
/// /dev/null (so it never holds the caller's terminal or pipes), and waits on a pipe until the
/// server writes "R" (mounted and answering) or "E message". The command's exit status is
/// therefore the mount's.
enum Daemon {
    /// The descriptor the server reports on, in the server.
    static let childReadyFD: Int32 = 3

    /// Where the server reads its keys (`--key-fd`).
    static let childKeyFD: Int32 = 4

    static func start(mountpoint: String, readyFD: Int32?, keys: [KeyStore.Entry] = []) throws {
        var fds: [Int32] = [0, 0]
        // pipe2 is a GNU extension Swift does not see; nothing else runs yet, so set the flag after.
        guard pipe(&fds) == 0 else { throw CLIError(message: "pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let (readEnd, writeEnd) = (fds[0], fds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        // dup2 onto 3 clears O_CLOEXEC there; the original ends stay close-on-exec.
        posix_spawn_file_actions_adddup2(&actions, writeEnd, childReadyFD)
        // Keys go through a pipe on descriptor 4, never through the server's argv (which any
        // user can read in /proc/PID/cmdline); --key and --keys-from-stdin are left out of it.
        var keyFds: [Int32] = [-1, -1]
        if !keys.isEmpty {
            guard pipe(&keyFds) == 0 else { throw CLIError(message: "pipe: \(String(cString: strerror(errno)))") }
            for fd in keyFds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, keyFds[0], childKeyFD)
        }

        let arguments = withoutKeyOptions(Array(CommandLine.arguments.dropFirst()))
        let argv = [CommandLine.arguments.first ?? "imagemount", "mount", "--daemon-ready-fd", "\(childReadyFD)"]
            + (keys.isEmpty ? [] : ["--key-fd", "\(childKeyFD)"]) + arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", &actions, nil, &cArgs, environ)
        close(writeEnd)
        if !keys.isEmpty {
            close(keyFds[0])
            if rc == 0 { writeKeys(keys, to: keyFds[1]) }
            close(keyFds[1])
        }
        guard rc == 0 else {
            close(readEnd)
            throw CLIError(message: "cannot start the mount server: \(String(cString: strerror(rc)))")
        }

        // "W message" lines (warnings of the server's open) come before "R" or "E".
        var report = readLine(readEnd)
        while let line = report, line.hasPrefix("W ") {
            Diagnostics.warn(String(line.dropFirst(2)))
            report = readLine(readEnd)
        }
        close(readEnd)
        if report == "R" {
            if let readyFD { MountCommand.signalUser(readyFD); close(readyFD) }
            return
        }
        // The server failed (or died): reap it so no zombie is left, then say why.
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if let report, report.hasPrefix("E ") {
            throw CLIError(message: String(report.dropFirst(2)))
        }
        let how = status & 0x7f == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(status & 0x7f)"
        throw CLIError(message: "\(mountpoint): the mount server \(how) before the mount was ready")
    }

    /// The arguments without the mount subcommand name and without --key/--keys-from-stdin.
    static func withoutKeyOptions(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        if arguments.first == "mount" { i = 1 }
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { out += arguments[i...]; break }
            if a == "--key" { i += 2; continue }
            if a.hasPrefix("--key=") || a == "--keys-from-stdin" { i += 1; continue }
            out.append(a)
            i += 1
        }
        return out
    }

    /// Key records for the server: "ID\nLENGTH\n" then LENGTH bytes, for each key.
    static func writeKeys(_ keys: [KeyStore.Entry], to fd: Int32) {
        func put(_ buffer: UnsafeRawBufferPointer) {
            var done = 0
            while done < buffer.count {
                let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                done += n
            }
        }
        for key in keys {
            var head = "\(key.id)\n\(key.secret.count)\n"
            head.withUTF8 { put(UnsafeRawBufferPointer($0)) }
            key.secret.withBytes { if $0.count > 0 { put($0) } }
        }
    }

    /// Reads the records `writeKeys` wrote, then closes `fd`.
    static func readKeys(from fd: Int32) throws -> [KeyStore.Entry] {
        defer { close(fd) }
        var entries: [KeyStore.Entry] = []
        while let id = readLine(fd) {
            guard let lengthText = readLine(fd), let length = Int(lengthText), length >= 0, length <= KeyStore.maxKeyFileBytes else {
                throw CLIError(message: "--key-fd: malformed key record")
            }
            let secret = try SecretBytes(count: length) { out in
                var done = 0
                while done < length {
                    let n = read(fd, out.baseAddress! + done, length - done)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { throw CLIError(message: "--key-fd: key record cut short") }
                    done += n
                }
            }
            entries.append(KeyStore.Entry(id: id, secret: secret))
        }
        return entries
    }

    /// Reads one line (without its newline) from `fd`; nil at end of file with nothing read.
    private static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }

    /// Closes every descriptor above stderr except `keep`: the server must not hold open any
    /// pipe or file its starter happened to leave inheritable (a test runner's pipes, say).
    static func closeInheritedDescriptors(keeping keep: [Int32]) {
        guard let dir = opendir("/proc/self/fd") else { return }
        var fds: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if let fd = Int32(name), fd > 2, !keep.contains(fd) { fds.append(fd) }
        }
        let own = dirfd(dir)
        closedir(dir)
        for fd in fds where fd != own { close(fd) }
    }
}
