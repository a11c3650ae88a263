import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An error the command line reports as one line, with its own exit status.
struct CLIError: Error {
    let message: String
    var exitCode: Int32 = 1
}

/// Messages to the user on stderr, always prefixed `imagemount: `. Written straight to fd 2
/// (no stdio buffering, no shared `FILE *` state).
enum Diagnostics {
    static func warn(_ message: String) {
        line("imagemount: warning: \(message)\n")
        // A background mount server's stderr is /dev/null: its warnings (a volume opened
        // read-only, a replayed journal) go up the readiness pipe for the command to print.
        if let fd = relayFD { MountCommand.signal(fd, "W " + message.replacingNewlines()) }
    }

    /// The readiness pipe of a background mount server (Daemon.swift), set before it opens
    /// anything.
    nonisolated(unsafe) static var relayFD: Int32?

    /// `-v`/`-x`: what is opened and mounted, one line each (set before the first image is opened).
    nonisolated(unsafe) static var tracing = false

    static func trace(_ message: @autoclosure () -> String) {
        if tracing { line("imagemount: trace: \(message())\n") }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        line("imagemount: \(message)\n")
        exit(code)
    }

    static func line(_ text: String) {
        var copy = text
        copy.withUTF8 { _ = try? FileDescriptor.standardError.writeAll(UnsafeRawBufferPointer($0)) }
    }
}
