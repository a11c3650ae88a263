import CEdit
import GuestFSBlock
import GuestFSFilesystem
import GuestFS
#if canImport(Glibc)
import Glibc
#endif

/// The interactive prompt's line editing, history and completion, through libedit (CEdit.h):
/// emacs-style editing and ~/.editrc as libedit gives them; Tab completes the command name in
/// the first word and guest paths (absolute, a directory's with its '/') after it; the history
/// is kept in ~/.imagemount_shell_history (as guestfish keeps ~/.guestfish), the last 500
/// lines, each appended when it is entered. Everything host-side (the library, terminfo,
/// ~/.editrc, the history file) is opened by `start`, before the sandbox.
final class ShellLineEditor {
    private let history: Int32

    /// The context completion lists guest paths of. One editor per process (libedit's
    /// readline interface is a single global state): the C generator reaches it here.
    nonisolated(unsafe) private static var context: ShellContext?
    nonisolated(unsafe) private static var candidates: [String] = []
    nonisolated(unsafe) private static var next = 0

    static let historyLines = 500
    static let historyBytes = 1 << 20

    private init(history: Int32) { self.history = history }

    /// libedit loaded and initialised, the history read; nil when libedit cannot be loaded
    /// (the prompt then reads plain lines).
    static func start(_ context: ShellContext) -> ShellLineEditor? {
        var error: UnsafePointer<CChar>?
        guard cedit_load(&error) == 0 else {
            Diagnostics.warn((error.map { String(cString: $0) } ?? "libedit could not be loaded") + "; no line editing or history")
            return nil
        }
        _ = cedit_initialize("imagemount")
        cedit_stifle_history(Int32(historyLines))
        Self.context = context
        cedit_set_completion(generator)
        var fd: Int32 = -1
        if let home = getenv("HOME"), home.pointee != 0 {
            let path = String(cString: home) + "/.imagemount_shell_history"
            fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd >= 0 {
                for line in readHistory(fd).suffix(historyLines) { _ = cedit_add_history(line) }
            }
        }
        return ShellLineEditor(history: fd)
    }

    /// The next line typed, nil at end of input.
    func readLine(prompt: String) -> String? {
        guard let raw = cedit_readline(prompt) else { return nil }
        defer { cedit_free(raw) }
        let line = String(cString: raw)
        if line.contains(where: { $0 != " " && $0 != "\t" }) {
            _ = cedit_add_history(line)
            if history >= 0 {
                let bytes = Array((line + "\n").utf8)
                _ = bytes.withUnsafeBytes { Glibc.write(history, $0.baseAddress, $0.count) }
            }
        }
        return line
    }

    deinit { if history >= 0 { close(history) } }

    /// The history file's lines (its last megabyte at most).
    private static func readHistory(_ fd: Int32) -> [String] {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return [] }
        let start = max(0, Int(st.st_size) - historyBytes)
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size) - start)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard n > 0 else { return [] }
        return bytes[..<n].split(separator: 0x0A).map { String(decoding: $0, as: UTF8.self) }.dropFirst(start > 0 ? 1 : 0).map { $0 }
    }

    /// What Tab offers for `text`: command names for the first word, else the guest paths
    /// that begin with it.
    static func completions(_ text: String, line: String, point: Int, context: ShellContext) -> [String] {
        let before = String(decoding: line.utf8.prefix(max(0, point - text.utf8.count)), as: UTF8.self)
        if !before.contains(where: { $0 != " " && $0 != "\t" }) {
            return ShellBuiltin.all.map(\.name).filter { $0.hasPrefix(text) }.sorted() + ["quit"].filter { $0.hasPrefix(text) }
        }
        guard text.hasPrefix("/"), let tree = try? context.mounted() else { return [] }
        let slash = text.lastIndex(of: "/") ?? text.startIndex
        let directory = String(text[...slash])
        let partial = Array(text[text.index(after: slash)...].utf8)
        guard let dir = try? tree.resolve(directory), let entries = try? tree.entries(dir, rejected: { _ in }) else { return [] }
        var out: [String] = []
        for entry in entries where entry.name.starts(with: partial) && entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
            let isDirectory = entry.type == .directory || (entry.type == .unknown && (try? tree.attributes(entry.node).isDirectory) == true)
            out.append(directory + String(decoding: entry.name, as: UTF8.self) + (isDirectory ? "/" : ""))
        }
        return out.sorted()
    }

    /// readline's completion generator: state 0 computes the list, each call hands out one.
    private static let generator: @convention(c) (UnsafePointer<CChar>?, Int32) -> UnsafeMutablePointer<CChar>? = { text, state in
        if state == 0 {
            next = 0
            let word = text.map { String(cString: $0) } ?? ""
            candidates = context.map { completions(word, line: String(cString: cedit_line_buffer()), point: Int(cedit_point()), context: $0) } ?? []
        }
        guard next < candidates.count else { return nil }
        defer { next += 1 }
        return strdup(candidates[next])
    }
}
