import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `edit`'s helper process, so that the process that parses the image can be sandboxed and
/// still have perl or $EDITOR run.
///
/// `edit` starts it (posix_spawn of /proc/self/exe, as Daemon.swift does, since fork() after
/// threads exist is unsafe in Swift) before it opens any image, then enters the sandbox, which
/// forbids running programs. For each file the parsing process sends the file's bytes over a
/// socket; the agent, which never sees the image, writes them to a private temporary copy,
/// runs perl or the editor on it and sends back what the copy holds afterwards. The agent ends
/// when the socket closes.
///
/// The wire format, all integers little-endian: a request is the kind (1 byte: 0 perl, 1
/// editor), the guest path and the Perl expression (each a 4-byte length and UTF-8), and the
/// contents (an 8-byte length and the bytes); a reply is a status (1 byte: 0 edited, 1 failed),
/// a message (4-byte length, UTF-8) and, when edited, the new contents (8-byte length, bytes).
enum EditorAgent {
    /// Set in the agent's environment to the number of its socket descriptor.
    static let environmentKey = "IMAGEMOUNT_EDITOR_AGENT_FD"

    /// The parsing process's end of an agent.
    final class Connection {
        private let fd: Int32
        private let pid: pid_t
        private var finished = false

        fileprivate init(fd: Int32, pid: pid_t) { self.fd = fd; self.pid = pid }

        /// Has the agent edit `contents` (the guest file `path`): with perl when `expression` is
        /// given, else with $EDITOR. Returns the edited bytes, or throws the agent's message.
        func edit(_ contents: [UInt8], path: String, expression: String?) throws -> [UInt8] {
            var request: [UInt8] = [expression == nil ? 1 : 0]
            Wire.appendString(path, to: &request)
            Wire.appendString(expression ?? "", to: &request)
            Wire.appendUInt64(UInt64(contents.count), to: &request)
            try Wire.send(request, fd: fd)
            try Wire.send(contents, fd: fd)
            let status = try Wire.receive(1, fd: fd)
            let message = try Wire.receiveString(fd: fd)
            guard status == [0] else { throw CLIError(message: message) }
            let count = try Wire.receiveUInt64(fd: fd)
            guard count <= EditCommand.maxSize else { throw CLIError(message: "\(path): edited file larger than 1 GiB; not written") }
            return try Wire.receive(Int(count), fd: fd)
        }

        /// Closes the socket (the agent then exits) and reaps the agent.
        func finish() {
            guard !finished else { return }
            finished = true
            close(fd)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }

        deinit { finish() }
    }

    /// Starts the agent. Its stdio are ours, so an interactive editor has the terminal.
    /// SIGPIPE is ignored from here on: should the agent die, a write to its socket fails with
    /// EPIPE and the edit ends in an error, with the filesystem still closed clean, instead of
    /// the signal killing this process mid-way (the agent restores the default for its editor).
    static func start() throws -> Connection {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
            throw CLIError(message: "edit: socketpair: \(Errno(rawValue: errno).description)")
        }
        let (ours, theirs) = (fds[0], fds[1])
        // Ours must not leak into the agent (or its editor); theirs is the one it inherits.
        _ = fcntl(ours, F_SETFD, FD_CLOEXEC)
        _ = fcntl(theirs, F_SETFD, 0)
        var environment = environmentWithout(environmentKey) + ["\(environmentKey)=\(theirs)"]
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { cEnvironment.forEach { free($0) } }
        environment.removeAll()
        var cArgs: [UnsafeMutablePointer<CChar>?] = [strdup("imagemount-edit-agent"), nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/proc/self/exe", nil, nil, &cArgs, &cEnvironment)
        close(theirs)
        guard rc == 0 else {
            close(ours)
            throw CLIError(message: "edit: cannot start the editor helper: \(Errno(rawValue: rc).description)")
        }
        return Connection(fd: ours, pid: pid)
    }

    private static func environmentWithout(_ key: String) -> [String] {
        var result: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if !text.hasPrefix(key + "=") { result.append(text) }
            entry += 1
        }
        return result
    }

    /// At the very start of `main`: when this process is an agent, serve and exit.
    static func runIfAgent() {
        guard let value = getenv(environmentKey).map({ String(cString: $0) }) else { return }
        unsetenv(environmentKey)
        signal(SIGPIPE, SIG_DFL)
        guard let fd = Int32(value), fd > 2 else { Diagnostics.fail("\(environmentKey): not a descriptor", code: 1) }
        // The editor must not inherit the socket.
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        while let request = try? receiveRequest(fd: fd) {
            var reply: [UInt8]
            do {
                let edited = try FileEdit.editCopy(request.contents, path: request.path, expression: request.expression)
                reply = [0]
                Wire.appendString("", to: &reply)
                Wire.appendUInt64(UInt64(edited.count), to: &reply)
                guard (try? Wire.send(reply, fd: fd)) != nil, (try? Wire.send(edited, fd: fd)) != nil else { break }
            } catch {
                reply = [1]
                Wire.appendString((error as? CLIError)?.message ?? "\(request.path): \(error)", to: &reply)
                guard (try? Wire.send(reply, fd: fd)) != nil else { break }
            }
        }
        exit(0)
    }

    private struct Request {
        let path: String
        let expression: String?
        let contents: [UInt8]
    }

    private static func receiveRequest(fd: Int32) throws -> Request {
        let kind = try Wire.receive(1, fd: fd)
        let path = try Wire.receiveString(fd: fd)
        let expression = try Wire.receiveString(fd: fd)
        let count = try Wire.receiveUInt64(fd: fd)
        guard count <= EditCommand.maxSize else { throw Errno.fileTooLarge }
        let contents = try Wire.receive(Int(count), fd: fd)
        return Request(path: path, expression: kind == [0] ? expression : nil, contents: contents)
    }

    /// Length-prefixed messages over a stream socket.
    private enum Wire {
        static func appendUInt64(_ value: UInt64, to bytes: inout [UInt8]) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }

        static func appendString(_ text: String, to bytes: inout [UInt8]) {
            let utf8 = Array(text.utf8)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: utf8.count).littleEndian) { bytes += $0 }
            bytes += utf8
        }

        static func send(_ bytes: [UInt8], fd: Int32) throws {
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw CLIError(message: "edit: the editor helper went away") }
                done += n
            }
        }

        static func receive(_ count: Int, fd: Int32) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw CLIError(message: "edit: the editor helper went away") }
                done += n
            }
            return bytes
        }

        static func receiveUInt64(fd: Int32) throws -> UInt64 {
            let bytes = try receive(8, fd: fd)
            return bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }

        static func receiveString(fd: Int32) throws -> String {
            let bytes = try receive(4, fd: fd)
            let count = bytes.reversed().reduce(0) { $0 << 8 | Int($1) }
            guard count <= 1 << 20 else { throw CLIError(message: "edit: a message from the editor helper is too long") }
            return String(decoding: try receive(count, fd: fd), as: UTF8.self)
        }
    }
}
