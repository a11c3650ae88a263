#if canImport(Glibc)
import Glibc
#endif

/// Where a running mount server records its pid, so that `imagemount unmount MOUNTDIR` can
/// wait for exactly that process to exit. One file per mountpoint, in a runtime directory:
/// /run/imagemount as root, else $XDG_RUNTIME_DIR/imagemount, else /tmp/imagemount-UID.
enum ServerRegistry {
    static var directory: String {
        if geteuid() == 0 { return "/run/imagemount" }
        if let xdg = getenv("XDG_RUNTIME_DIR") { return String(cString: xdg) + "/imagemount" }
        return "/tmp/imagemount-\(geteuid())"
    }

    /// The file for a canonical mountpoint: its path with '/' and '%' percent-escaped.
    static func file(for mountpoint: String) -> String {
        var name = ""
        for c in mountpoint {
            switch c {
            case "/": name += "%2F"
            case "%": name += "%25"
            default: name.append(c)
            }
        }
        return directory + "/" + name + ".pid"
    }

    static func register(mountpoint: String, pid: pid_t) {
        mkdir(directory, 0o700)
        PidFile.write(pid, to: file(for: mountpoint))
    }

    static func unregister(mountpoint: String) {
        unlink(file(for: mountpoint))
    }

    /// The pid of the server for `mountpoint`, if one is recorded, still alive, and running
    /// this same executable (a file left by a killed server may name a reused pid).
    static func server(for mountpoint: String) -> pid_t? {
        guard let pid = PidFile.read(file(for: mountpoint)), HostProcess.isAlive(pid),
              HostProcess.executable(pid) == HostProcess.executable(getpid()) else { return nil }
        return pid
    }
}

/// `--pid-file` and registry files: the pid in decimal and a newline.
enum PidFile {
    static func write(_ pid: pid_t, to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let text = "\(pid)\n"
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    }

    static func read(_ path: String) -> pid_t? {
        guard let text = MountInfo.readText(path) else { return nil }
        return pid_t(text.trimmingCharacters(in: " \n"))
    }
}

/// Facts about other processes, from /proc.
enum HostProcess {
    /// True while `pid` exists and has not exited (a zombie counts as exited).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = MountInfo.readText("/proc/\(pid)/stat"),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: " ").first
        return state != "Z" && state != "X"
    }

    /// The executable `pid` runs (the /proc/PID/exe link), or nil.
    static func executable(_ pid: pid_t) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Waits until `pid` has exited, up to `timeout` seconds. Returns whether it did.
    static func waitForExit(_ pid: pid_t, timeout: Double) -> Bool {
        var waited = 0.0
        while isAlive(pid) {
            if waited >= timeout { return false }
            usleep(10_000)
            waited += 0.01
        }
        return true
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String { String(self).trimmingCharacters(in: set) }
}
