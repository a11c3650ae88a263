import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a copy (copy-in, copy-out, tar-in, tar-out) on standard error: bytes, files,
/// rate and, when the total is known, percent and ETA.
///
/// On a terminal one line is redrawn in place (`\r`, then erase to the end of the line); when
/// stderr is a file or a pipe (`--progress` asked for it), one line is written per interval.
/// Either way a last line says what was done. Counters are atomics, so copy-out's workers add
/// to them without a lock; the one that crosses the interval prints, under a mutex.
final class ProgressReporter: Sendable {
    /// A reporter that prints nothing (progress off); every call is a no-op but the counters.
    static let off = ProgressReporter(enabled: false)

    let enabled: Bool
    private let terminal: Bool
    private let interval: UInt64
    private let start: UInt64
    private let bytes = Atomic<UInt64>(0)
    private let files = Atomic<UInt64>(0)
    private let total = Atomic<UInt64>(0)
    /// When the last line went out (nanoseconds, CLOCK_MONOTONIC).
    private let printed = Mutex<UInt64>(0)

    /// `interval` is in nanoseconds; one second by default.
    init(enabled: Bool, interval: UInt64 = 1_000_000_000) {
        self.enabled = enabled
        self.terminal = isatty(2) == 1
        self.interval = interval
        self.start = Self.now()
    }

    /// Whether progress is shown: as asked (`--progress`/`--no-progress`), else only when
    /// stderr is a terminal.
    static func enabled(_ asked: Bool?) -> Bool { asked ?? (isatty(2) == 1) }

    /// Sets the number of bytes the whole copy moves, for percent and ETA (0: unknown).
    func setTotal(_ bytes: UInt64) { total.store(bytes, ordering: .relaxed) }

    func add(bytes n: UInt64) {
        guard enabled else { return }
        bytes.wrappingAdd(n, ordering: .relaxed)
        tick()
    }

    /// Sets the byte count outright (tar-in counts the archive's bytes consumed).
    func setBytes(_ n: UInt64) {
        guard enabled else { return }
        bytes.store(n, ordering: .relaxed)
        tick()
    }

    func addFile() {
        guard enabled else { return }
        files.wrappingAdd(1, ordering: .relaxed)
        tick()
    }

    /// The last line; nothing when progress is off.
    func finish() {
        guard enabled else { return }
        printed.withLock { _ in
            let elapsed = Double(Self.now() - start) / 1e9
            let b = bytes.load(ordering: .relaxed)
            let text = "imagemount: progress: done: \(Self.size(b)), \(files.load(ordering: .relaxed)) files in "
                + "\(Self.seconds(elapsed)) (\(Self.size(UInt64(Double(b) / max(elapsed, 0.001))))/s)"
            Diagnostics.line(terminal ? "\r" + text + "\u{1B}[K\n" : text + "\n")
        }
    }

    private func tick() {
        let now = Self.now()
        printed.withLock { last in
            guard now - last >= interval else { return }
            last = now
            Diagnostics.line(terminal ? "\r" + line(now) + "\u{1B}[K" : line(now) + "\n")
        }
    }

    /// "imagemount: progress: 12.5M of 100M (12%), 41 files, 8.1M/s, ETA 0:11".
    private func line(_ now: UInt64) -> String {
        let elapsed = max(Double(now - start) / 1e9, 0.001)
        let b = bytes.load(ordering: .relaxed), t = total.load(ordering: .relaxed)
        let rate = Double(b) / elapsed
        var text = "imagemount: progress: \(Self.size(b))"
        if t > 0 { text += " of \(Self.size(t)) (\(Int(min(100, Double(b) * 100 / Double(t))))%)" }
        text += ", \(files.load(ordering: .relaxed)) files, \(Self.size(UInt64(rate)))/s"
        if t > b, rate > 0 { text += ", ETA \(Self.clock(Double(t - b) / rate))" }
        return text
    }

    private static func size(_ bytes: UInt64) -> String { HumanSize.format(bytes) + (bytes >= 1024 ? "" : "B") }

    private static func seconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) s"
    }

    /// m:ss, or h:mm:ss from an hour on.
    private static func clock(_ s: Double) -> String {
        let whole = Int(min(s, 359_999).rounded(.up))
        let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60)
        let ss = sec < 10 ? "0\(sec)" : "\(sec)"
        if h > 0 { return "\(h):\(m < 10 ? "0" : "")\(m):\(ss)" }
        return "\(m):\(ss)"
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
