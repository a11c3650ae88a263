#if canImport(Glibc)
import Glibc
#endif

/// Runs jobs each in a process of its own, at most `parallel` at a time, and collects what each
/// wrote for stdout, in job order.
///
/// Why processes, not threads: each job opens a different guest's images and then parses
/// them, so each enters its own sandbox after its own opens (Sandbox.swift: a process that has
/// entered it can open no further host file), a trap on one hostile image costs only that
/// image's row, and a job's caches end with it (a fleet of 200 images stays within one
/// image's memory per worker). The parent opens no image: it only forks, reads pipes and reaps.
///
/// Must be called while the process has one thread (fork copies only the caller's).
enum ForkedWorkers {
    struct Outcome {
        var output: [UInt8] = []
        /// The job threw (its message is already on stderr) or the process died.
        var failed = false
    }

    /// `job(i)` runs in the child and returns its stdout bytes; an error it throws is printed
    /// by `report` (in the child) and marks the job failed.
    static func run(count: Int, parallel: Int, job: (Int) throws -> [UInt8], report: (Int, any Error) -> Void) -> [Outcome] {
        var outcomes = [Outcome](repeating: Outcome(), count: count)
        var running: [(index: Int, pid: pid_t, fd: Int32)] = []
        var next = 0
        let width = max(1, parallel)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while next < count || !running.isEmpty {
            while next < count && running.count < width {
                if let started = start(next, job: job, report: report) {
                    running.append((next, started.pid, started.fd))
                } else {
                    outcomes[next].failed = true
                }
                next += 1
            }
            guard !running.isEmpty else { continue }
            var fds = running.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                // Not expected with valid descriptors: read each in turn (read blocks instead).
                for slot in fds.indices { fds[slot].revents = Int16(POLLIN) }
            }
            var finished: [Int] = []
            for (slot, entry) in running.enumerated() where fds[slot].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    outcomes[entry.index].output += chunk.prefix(n)
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(entry.fd)
                    var status: Int32 = 0
                    while waitpid(entry.pid, &status, 0) < 0 && errno == EINTR {}
                    // WIFEXITED && WEXITSTATUS == 0, spelled out (the macros are not imported).
                    if (status & 0x7f) != 0 || ((status >> 8) & 0xff) != 0 { outcomes[entry.index].failed = true }
                    finished.append(slot)
                }
            }
            for slot in finished.reversed() { running.remove(at: slot) }
        }
        return outcomes
    }

    /// Forks job `index` with a pipe for its stdout; nil (after a message) when fork fails.
    private static func start(_ index: Int, job: (Int) throws -> [UInt8], report: (Int, any Error) -> Void) -> (pid: pid_t, fd: Int32)? {
        var ends: [Int32] = [-1, -1]
        // Close-on-exec so no job's descriptor reaches a program another job starts (the
        // parent has one thread, so nothing can fork between pipe and fcntl).
        guard pipe(&ends) == 0, fcntl(ends[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(ends[1], F_SETFD, FD_CLOEXEC) == 0 else {
            Diagnostics.warn("pipe: \(String(cString: strerror(errno)))")
            return nil
        }
        let pid = fork()
        if pid < 0 {
            Diagnostics.warn("fork: \(String(cString: strerror(errno)))")
            close(ends[0]); close(ends[1])
            return nil
        }
        if pid == 0 {
            close(ends[0])
            var status: Int32 = 0
            do {
                let bytes = try job(index)
                var offset = 0
                while offset < bytes.count {
                    let n = bytes.withUnsafeBytes { raw in
                        raw.baseAddress.map { write(ends[1], $0 + offset, raw.count - offset) } ?? 0
                    }
                    if n < 0 { if errno == EINTR { continue }; status = 1; break }
                    if n == 0 { status = 1; break }
                    offset += n
                }
            } catch {
                report(index, error)
                status = 1
            }
            // _exit: the parent's atexit handlers and buffers are not the child's to run.
            _exit(status)
        }
        close(ends[1])
        return (pid, ends[0])
    }
}
