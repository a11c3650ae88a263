import GuestFS
import SystemPackage
import Synchronization

/// `--debug`: one line per request and one per reply on stderr, plus the rich errors that
/// the FUSE edge turns into bare errnos.
enum DebugLog {
    /// Set once before the session starts; read by every worker thread afterwards.
    nonisolated(unsafe) static var enabled = false

    static func request(_ op: StaticString, inode: UInt64, detail: String) {
        write("→ \(op) ino=\(inode)\(detail.isEmpty ? "" : " " + detail)")
    }

    static func reply(_ op: StaticString, inode: UInt64, detail: String) {
        write("← \(op) ino=\(inode) \(detail)")
    }

    /// Lines that matter even without --debug (the stderr of a daemon is /dev/null anyway).
    static func always(_ text: String) { write(text) }

    private static func write(_ text: String) {
        var line = "imagemount[fuse]: " + text + "\n"
        line.withUTF8 { _ = try? FileDescriptor.standardError.writeAll(UnsafeRawBufferPointer($0)) }
    }
}
