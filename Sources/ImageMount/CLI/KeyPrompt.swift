import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// Passphrases typed by the user: `--keys-from-stdin` reads one line per request, and on a
/// terminal with no `--key` the user is asked with echo off (termios), as libguestfs does.
/// The bytes go straight into `SecretBytes`; the line buffer is wiped.
enum KeyPrompt {
    static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// One line from `fd` without its newline, read a byte at a time so nothing past the line is
    /// consumed; nil at end of input with nothing read. Lines longer than 8 KiB are cut there.
    static func readLine(fd: Int32) -> SecretBytes? {
        var line = [UInt8](repeating: 0, count: 8192)
        defer { SecretBytes.wipe(&line) }
        var count = 0, sawAnything = false
        var byte: UInt8 = 0
        while true {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            sawAnything = true
            if byte == 0x0A { break }
            if count < line.count { line[count] = byte; count += 1 }
        }
        byte = 0
        guard sawAnything else { return nil }
        if count > 0, line[count - 1] == 0x0D { count -= 1 }
        return line.withUnsafeBytes { SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }

    /// Writes `text` to stderr, reads a line from stdin with echo off (on with `echo`, as
    /// libguestfs's --echo-keys), restores the terminal.
    static func prompt(_ text: String, echo: Bool = false) -> SecretBytes? {
        var old = termios()
        let haveTerminal = !echo && tcgetattr(0, &old) == 0
        if haveTerminal {
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            quiet.c_lflag |= tcflag_t(ECHONL)
            _ = tcsetattr(0, TCSAFLUSH, &quiet)
        }
        var message = text
        message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        let answer = readLine(fd: 0)
        if haveTerminal { _ = tcsetattr(0, TCSAFLUSH, &old) }
        return answer
    }
}
