import GuestFSBlock

/// One guestfish command line split into words, as guestfish's `parse_command_line` splits
/// it (fish/fish.c; guestfish(1), "QUOTING"): words are separated by spaces and tabs; "double
/// quotes" take C-like escapes (\\ \" \a \b \f \n \r \t \v, \ooo octal, \xHH); 'single quotes'
/// take everything literally; a line whose first word starts with `#` is a comment; a leading
/// `-` on the command name means "carry on if this command fails".
struct ShellLine: Equatable {
    var command: String
    var arguments: [String]
    /// The command was written `-command`: an error is reported, and the script goes on.
    var ignoreErrors = false
}

enum ShellWords {
    struct SyntaxError: Error, Equatable {
        let message: String
    }

    /// The line's command and arguments; nil for a blank or comment line.
    static func parse(_ line: String) throws(SyntaxError) -> ShellLine? {
        var words: [String] = []
        var bytes = Array(line.utf8)[...]
        func skipBlanks() { while let b = bytes.first, b == 0x20 || b == 0x09 || b == 0x0D { bytes.removeFirst() } }
        skipBlanks()
        if bytes.first == UInt8(ascii: "#") || bytes.isEmpty { return nil }
        // Local commands (`!cmd`) and pipes to them run programs on the host: not here.
        if bytes.first == UInt8(ascii: "!") {
            throw SyntaxError(message: "local commands (!) are not supported")
        }
        while true {
            skipBlanks()
            guard let first = bytes.first else { break }
            var word: [UInt8] = []
            if first == UInt8(ascii: "\"") {
                bytes.removeFirst()
                word = try doubleQuoted(&bytes)
            } else if first == UInt8(ascii: "'") {
                bytes.removeFirst()
                guard let end = bytes.firstIndex(of: UInt8(ascii: "'")) else {
                    throw SyntaxError(message: "unterminated single quote")
                }
                word = Array(bytes[..<end])
                bytes = bytes[(end + 1)...]
            } else {
                // A quote inside an unquoted word is an ordinary character, as in guestfish.
                while let b = bytes.first, b != 0x20, b != 0x09, b != 0x0D {
                    word.append(b)
                    bytes.removeFirst()
                }
                if words.count > 0, word == Array("|".utf8) {
                    throw SyntaxError(message: "pipes to local commands (|) are not supported")
                }
            }
            // A quoted word must end at a blank: guestfish refuses text glued to a closing quote
            // ("command arguments not separated by whitespace").
            if let b = bytes.first, b != 0x20, b != 0x09, b != 0x0D {
                throw SyntaxError(message: "command arguments not separated by whitespace")
            }
            words.append(String(decoding: word, as: UTF8.self))
        }
        guard var command = words.first else { return nil }
        var ignore = false
        if command.hasPrefix("-") && command.count > 1 {
            ignore = true
            command.removeFirst()
        }
        return ShellLine(command: command, arguments: Array(words.dropFirst()), ignoreErrors: ignore)
    }

    private static func doubleQuoted(_ bytes: inout ArraySlice<UInt8>) throws(SyntaxError) -> [UInt8] {
        var word: [UInt8] = []
        while let b = bytes.popFirst() {
            switch b {
            case UInt8(ascii: "\""):
                return word
            case UInt8(ascii: "\\"):
                guard let e = bytes.popFirst() else { throw SyntaxError(message: "unterminated double quote") }
                switch e {
                case UInt8(ascii: "a"): word.append(0x07)
                case UInt8(ascii: "b"): word.append(0x08)
                case UInt8(ascii: "f"): word.append(0x0C)
                case UInt8(ascii: "n"): word.append(0x0A)
                case UInt8(ascii: "r"): word.append(0x0D)
                case UInt8(ascii: "t"): word.append(0x09)
                case UInt8(ascii: "v"): word.append(0x0B)
                case UInt8(ascii: "0")...UInt8(ascii: "7"):
                    // Up to three octal digits.
                    var value = UInt32(e - UInt8(ascii: "0"))
                    for _ in 0..<2 {
                        guard let d = bytes.first, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(d) else { break }
                        value = value * 8 + UInt32(d - UInt8(ascii: "0"))
                        bytes.removeFirst()
                    }
                    guard value <= 0xFF else { throw SyntaxError(message: "octal escape out of range") }
                    word.append(UInt8(value))
                case UInt8(ascii: "x"):
                    var value: UInt8 = 0
                    for _ in 0..<2 {
                        guard let d = bytes.popFirst(), let v = HexDigit.value(d) else {
                            throw SyntaxError(message: "\\x must be followed by two hex digits")
                        }
                        value = value << 4 | v
                    }
                    word.append(value)
                default:
                    // \\ \" and any other character stand for themselves.
                    word.append(e)
                }
            default:
                word.append(b)
            }
        }
        throw SyntaxError(message: "unterminated double quote")
    }

    /// Commands given as arguments (`imagemount shell -a x -i cat /etc/hostname : ls /`):
    /// separated by words that are exactly `:`, each taken word for word (no quoting: the
    /// calling shell has done it).
    static func fromArguments(_ words: [String]) -> [ShellLine] {
        var lines: [ShellLine] = []
        var current: [String] = []
        func close() {
            guard var command = current.first else { return }
            var ignore = false
            if command.hasPrefix("-") && command.count > 1 { ignore = true; command.removeFirst() }
            lines.append(ShellLine(command: command, arguments: Array(current.dropFirst()), ignoreErrors: ignore))
            current = []
        }
        for word in words {
            if word == ":" { close() } else { current.append(word) }
        }
        close()
        return lines
    }
}
