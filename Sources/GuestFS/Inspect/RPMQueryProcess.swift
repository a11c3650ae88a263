import GuestFSBlock
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Runs librpm's reading of a copied rpmdb in a child process, so that what a hostile database
/// can do to librpm costs only the applications list.
///
/// Why: librpm trusts its database more than an image's bytes deserve. Its read-only Berkeley
/// DB reader (rpm lib/backend/bdb_ro.c) follows overflow-page chains without a bound, so a
/// page that links to itself with no data loops forever, and rpm's allocator exits the whole
/// process when an allocation sized from the file fails. The child is forked inside the
/// sandbox, so it inherits it (no host path, no exec, no new socket); it sends back the list,
/// or the error it met, through a pipe, and is killed when it takes longer than `timeout`
/// seconds. A crash, an exit, a hang or garbage on the pipe becomes one error for the warning.
///
/// The parent reads the child's answer as it would read an image: lengths are checked against
/// what arrived and against `maxAnswer`.
enum RPMQueryProcess {
    /// Seconds librpm may take: a Fedora workstation's ~3000 headers take about a second.
    /// `IMAGEMOUNT_RPM_TIMEOUT` (seconds) changes it, for the tests of a looping database.
    static var timeout: Int {
        if let value = getenv("IMAGEMOUNT_RPM_TIMEOUT").flatMap({ Int(String(cString: $0)) }), value > 0, value <= 3600 { return value }
        return 60
    }
    /// Largest answer read: more than the 512 MiB database it was read from could hold.
    static let maxAnswer = 768 << 20

    /// `body` run in a child; its applications, or its error as this process's error. `what`
    /// names the database in the errors of the child's death.
    static func run(_ what: String, _ body: () throws -> [Application]) throws -> [Application] {
        var ends: [Int32] = [-1, -1]
        _ = try Syscall.valueOrErrno { pipe(&ends) }.get()
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        let pid: pid_t
        switch Syscall.valueOrErrno({ fork() }) {
        case .success(let started): pid = started
        case .failure(let error):
            close(ends[0]); close(ends[1])
            throw ImageError(structure: what, reason: "cannot start a process for librpm: \(error)", errno: error)
        }
        if pid == 0 {
            close(ends[0])
            var answer: [UInt8]
            do { answer = [0] + encode(try body()) } catch { answer = [1] + field(ImageError.wrap(error).description) }
            let out = FileDescriptor(rawValue: ends[1])
            _ = try? answer.withUnsafeBytes { try out.writeAll($0) }
            // _exit: no atexit handler or buffered output of the parent's runs twice.
            _exit(0)
        }
        close(ends[1])
        let input = FileDescriptor(rawValue: ends[0])
        defer { try? input.close() }
        let (bytes, timedOut) = read(input, deadline: timeout)
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        _ = Syscall.valueOrErrno { waitpid(pid, &status, 0) }
        if timedOut {
            throw ImageError(structure: what, reason: "librpm did not finish reading it in \(timeout) s", errno: .timedOut)
        }
        // WIFSIGNALED / WEXITSTATUS, spelled out (the macros are not imported).
        if status & 0x7f != 0 {
            throw ImageError(structure: what, reason: "librpm died reading it (signal \(status & 0x7f))", errno: .ioError)
        }
        if (status >> 8) & 0xff != 0 {
            throw ImageError(structure: what, reason: "librpm gave up reading it (exit status \((status >> 8) & 0xff))", errno: .ioError)
        }
        return try decode(bytes, what: what)
    }

    /// Everything the child writes until it closes the pipe, or until `deadline` seconds pass.
    private static func read(_ fd: FileDescriptor, deadline seconds: Int) -> (bytes: [UInt8], timedOut: Bool) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let end = Int(now.tv_sec) + seconds
        while bytes.count <= maxAnswer {
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left = end - Int(now.tv_sec)
            guard left > 0 else { return (bytes, true) }
            var poller = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            let ready = Syscall.valueOrErrno(retryOnInterrupt: true) { poll(&poller, 1, Int32(min(left, 60) * 1000)) }
            guard case .success(let count) = ready else { return (bytes, false) }
            if count == 0 { continue }
            guard let n = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0) }), n > 0 else { return (bytes, false) }
            bytes += chunk.prefix(n)
        }
        return (bytes, false)
    }

    // MARK: The answer: a status byte (0 applications, 1 an error), then fields, each a 32-bit
    // little-endian length and that many bytes: the error's text, or per application its
    // name, epoch (decimal), version, release, arch, URL, summary and description.

    static let fieldsPerApplication = 8

    static func field(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        let count = UInt32(truncatingIfNeeded: bytes.count)
        return [UInt8(count & 0xff), UInt8((count >> 8) & 0xff), UInt8((count >> 16) & 0xff), UInt8(count >> 24)] + bytes
    }

    static func encode(_ apps: [Application]) -> [UInt8] {
        var out: [UInt8] = []
        for app in apps {
            for text in [app.name, String(app.epoch), app.version, app.release, app.arch, app.url, app.summary, app.description] {
                out += field(text)
            }
        }
        return out
    }

    static func decode(_ bytes: [UInt8], what: String) throws -> [Application] {
        func garbled(_ why: String) -> ImageError {
            ImageError(structure: what, reason: "librpm's process sent an answer that \(why)", errno: .ioError)
        }
        guard let status = bytes.first else { throw garbled("is empty") }
        var fields: [String] = []
        var offset = 1
        while offset < bytes.count {
            guard bytes.count - offset >= 4 else { throw garbled("ends inside a length") }
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            offset += 4
            guard length <= bytes.count - offset else { throw garbled("ends inside a field") }
            fields.append(String(decoding: bytes[offset..<(offset + length)], as: UTF8.self))
            offset += length
        }
        switch status {
        case 1:
            guard fields.count == 1 else { throw garbled("holds an error of \(fields.count) fields") }
            throw ImageError(reason: fields[0], errno: .invalidArgument)
        case 0:
            guard fields.count % fieldsPerApplication == 0 else { throw garbled("holds \(fields.count) fields") }
            return stride(from: 0, to: fields.count, by: fieldsPerApplication).map { start in
                var app = Application()
                app.name = fields[start]
                app.epoch = Int(fields[start + 1]).flatMap { Int32(exactly: $0) }.map(Int.init) ?? 0
                (app.version, app.release, app.arch) = (fields[start + 2], fields[start + 3], fields[start + 4])
                (app.url, app.summary, app.description) = (fields[start + 5], fields[start + 6], fields[start + 7])
                return app
            }
        default:
            throw garbled("starts with \(status)")
        }
    }
}
