import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An NBD server started for one test (qemu-nbd or nbdkit, the oracles of DESIGN.md §5), on a
/// Unix socket in its own scratch folder or on 127.0.0.1. Both daemonize once the socket
/// listens; stdio goes to a log file, so the server never holds the test runner's pipes.
/// `stop()` (SIGTERM) or `kill()` (SIGKILL) ends it; `deinit` stops it on every path.
public final class NBDServer: @unchecked Sendable {
    public let directory: TempDir
    public let socket: String
    /// The TCP port, for servers started with `tcp: true`.
    public let port: Int?
    public let pid: Int32
    private var ended = false

    /// `nbd+unix:///EXPORT?socket=…`, or `nbd://127.0.0.1:PORT/EXPORT` for a TCP server.
    public func uri(export: String = "") -> String {
        if let port { return "nbd://127.0.0.1:\(port)/\(export)" }
        return "nbd+unix:///\(export)?socket=\(socket)"
    }
    public var uri: String { uri() }

    private init(directory: TempDir, socket: String, port: Int?, pid: Int32) {
        self.directory = directory; self.socket = socket; self.port = port; self.pid = pid
    }

    /// `qemu-nbd -f FORMAT IMAGE`, read-only unless `writable`, `--persistent` (several clients
    /// one after another).
    public static func qemuNBD(_ image: String, format: String, writable: Bool) throws -> NBDServer {
        try start { socket, pidFile in
            "qemu-nbd --socket=\(Shell.quote(socket)) --pid-file=\(Shell.quote(pidFile)) --fork --persistent -f \(format)"
                + (writable ? "" : " -r") + " " + Shell.quote(image)
        }
    }

    /// `nbdkit [ARGUMENTS]` with its own socket, e.g. `file file=IMG`, `memory 64M`,
    /// `--filter=delay file file=IMG rdelay=1ms`; `tcp` listens on 127.0.0.1 instead.
    public static func nbdkit(_ arguments: String, tcp: Bool = false) throws -> NBDServer {
        if tcp {
            // A random port; another process may hold it, so try a few.
            var lastError: (any Error)?
            for _ in 0..<8 {
                let port = Int.random(in: 20000...60000)
                do {
                    return try start(port: port) { _, pidFile in
                        "nbdkit -i 127.0.0.1 -p \(port) -P \(Shell.quote(pidFile)) \(arguments)"
                    }
                } catch { lastError = error }
            }
            throw lastError ?? Shell.Failure(command: "nbdkit", status: -1, stderr: "no free port")
        }
        return try start { socket, pidFile in "nbdkit -U \(Shell.quote(socket)) -P \(Shell.quote(pidFile)) \(arguments)" }
    }

    private static func start(port: Int? = nil, _ command: (String, String) -> String) throws -> NBDServer {
        let dir = try TempDir("imagemount-nbd")
        let socket = dir.file("nbd.sock"), pidFile = dir.file("server.pid"), log = dir.file("server.log")
        // The daemon must hold none of the runner's descriptors (Foundation's Process leaves some
        // open in its children, and a held pipe would keep Shell.run reading forever): bash closes
        // every descriptor above 2 before it execs the server.
        let closeAll = "for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ \"$n\" -gt 2 ]; then eval \"exec $n>&-\" 2>/dev/null; fi; done; exec "
        let line = "bash -c " + Shell.quote(closeAll + command(socket, pidFile)) + " </dev/null >>\(Shell.quote(log)) 2>&1"
        let result = try Shell.run(line)
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard result.status == 0 else { throw Shell.Failure(command: line, status: result.status, stderr: logText) }
        // Both write the pid file once listening; wait a little in case it lags the parent's exit.
        for _ in 0..<100 {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
               let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return NBDServer(directory: dir, socket: socket, port: port, pid: pid)
            }
            usleep(20_000)
        }
        throw Shell.Failure(command: line, status: -1, stderr: "no pid file: \(logText)")
    }

    /// SIGTERM (qemu-nbd flushes and exits), then waits until the process is gone.
    public func stop() { end(SIGTERM) }

    /// SIGKILL: the server goes away mid-session.
    public func kill() { end(SIGKILL) }

    /// SIGSTOP: the server stops answering but keeps its socket open. Returns once the kernel
    /// shows it stopped (state T in /proc/PID/stat): the signal is delivered asynchronously, and
    /// on a loaded machine the server could otherwise still answer the next request.
    public func pause() {
        _ = Glibc.kill(pid, SIGSTOP)
        for _ in 0..<400 {
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")"),
               stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T") { return }
            usleep(5_000)
        }
    }

    private func end(_ signal: Int32) {
        guard !ended else { return }
        ended = true
        _ = Glibc.kill(pid, SIGCONT)
        _ = Glibc.kill(pid, signal)
        // Not our child: poll until it is gone (or a zombie waiting for its reaper), 10 s, then SIGKILL.
        for i in 0..<400 {
            if !Self.alive(pid) { return }
            if i == 200 { _ = Glibc.kill(pid, SIGKILL) }
            usleep(25_000)
        }
    }

    static func alive(_ pid: Int32) -> Bool {
        guard Glibc.kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    deinit { stop() }
}
