import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

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

    /// Lines that matter even without --debug: on stderr, and in the system log, since the
    /// stderr of a daemonized server is /dev/null.
    static func always(_ text: String) {
        write(text)
        text.withCString { message in withVaList([message]) { vsyslog(LOG_ERR, "imagemount: %s", $0) } }
    }

    private static func write(_ text: String) {
        var line = "imagemount[fuse]: " + text + "\n"
        line.withUTF8 { _ = try? FileDescriptor.standardError.writeAll(UnsafeRawBufferPointer($0)) }
    }
}
