import Foundation
import Testing

/// "Read-only means not one byte written": the state of every image a reading command is
/// given, taken before it runs and compared after. Size, mtime and ctime catch any write(2) or
/// truncate (the kernel moves them even when the bytes written are the same); images up to
/// 64 MiB are also hashed, which catches a write that put the old mtime back.
public struct ReadOnlyWitness: Sendable {
    struct State: Equatable {
        let size: Int64
        let mtime: timespec
        let ctime: timespec
        let sha256: String?
        static func == (a: State, b: State) -> Bool {
            a.size == b.size && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec &&
                a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec && a.sha256 == b.sha256
        }
    }
    let before: [String: State]

    /// Commands that never write an image; `mount` only without --rw/-w, `check` only without -r.
    static let reading: Set<String> = ["cat", "ls", "copy-out", "df", "filesystems", "inspect", "info", "check", "diff"]
    static let subcommands: Set<String> = reading.union(["mount", "unmount", "copy-in", "edit", "tar-in", "commit"])

    /// nil when `arguments` may write (or name no image).
    public init?(arguments: [String]) {
        guard Self.isReading(arguments) else { return nil }
        let images = Self.images(arguments)
        guard !images.isEmpty else { return nil }
        var before: [String: State] = [:]
        for image in images { if let state = Self.state(image) { before[image] = state } }
        self.before = before
    }

    static func isReading(_ arguments: [String]) -> Bool {
        let sub = arguments.first.flatMap { subcommands.contains($0) ? $0 : nil } ?? "mount"
        // Writes through --overlay go to the overlay: the -a images must not change at all.
        if arguments.contains(where: { $0 == "--overlay" || $0.hasPrefix("--overlay=") }) { return true }
        if sub == "check" { return !arguments.contains { $0 == "-r" || $0.hasPrefix("--repair") } }
        if sub == "mount" { return !arguments.contains { $0 == "--rw" || $0 == "-w" || $0 == "--help" } }
        return reading.contains(sub)
    }

    /// Whether the command leaves a server running (a mount not in the foreground).
    public static func startsServer(_ arguments: [String]) -> Bool {
        let sub = arguments.first.flatMap { subcommands.contains($0) ? $0 : nil } ?? "mount"
        return sub == "mount" && !arguments.contains("--help") && !arguments.contains("-f")
    }

    /// The values of -a/--add, however spelled.
    static func images(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if (a == "-a" || a == "--add" || a == "-A"), i + 1 < arguments.count { out.append(arguments[i + 1]); i += 2; continue }
            if a.hasPrefix("--add=") { out.append(String(a.dropFirst(6))) }
            else if a.hasPrefix("-a"), a.count > 2, !a.hasPrefix("--") { out.append(String(a.dropFirst(2))) }
            i += 1
        }
        return out.filter { FileManager.default.fileExists(atPath: $0) }
    }

    static func state(_ path: String) -> State? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var sum: String?
        if st.st_size <= 64 << 20 {
            let r = try? Shell.run("sha256sum < \(Shell.quote(path))")
            sum = r?.text
        }
        return State(size: Int64(st.st_size), mtime: st.st_mtim, ctime: st.st_ctim, sha256: sum)
    }

    /// Records an issue for every image that changed.
    public func verify(_ arguments: [String]) {
        for (image, was) in before {
            let now = Self.state(image)
            if now != was {
                Issue.record("read-only command changed \(image): imagemount \(arguments.joined(separator: " "))")
            }
        }
    }
}
