import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// What runs before (and, on a failure, after) ArgumentParser's parse, so that the command
/// line behaves as getopt_long does in the libguestfs tools:
///
/// - options that print and exit (`-V`/`--version`, `--long-options`, `--short-options`,
///   `--fuse-help`) act where they stand, before any check of the other options;
/// - an unknown option is reported before any other mistake (ArgumentParser decodes and
///   validates first and looks for leftovers last);
/// - every usage error is libguestfs's two lines (`imagemount: …` then
///   `Try ‘imagemount --help’ for more information.`) and exit status 1.
///
/// The option names come from the declared commands themselves (their full help text, hidden
/// options included), so this reads the command line exactly as the declarations do and
/// holds no list of its own.
/// A command with options it reads from its own arguments (see LsCommand's --checksum[=TYPE]).
protocol HandParsedOptions {
    static var handParsedOptions: [String] { get }
}

enum CommandLineCheck {
    /// One option spelling of a command: `-a` or `--add`, and whether a value follows it.
    struct Spelling: Equatable {
        let name: String
        let takesValue: Bool
        let shown: Bool
    }

    /// What a left-to-right scan of the arguments met first.
    enum Finding: Equatable {
        case unknown(String)
        case printAndExit(String)
    }

    static let printAndExit: Set<String> = ["-V", "--version", "--long-options", "--short-options", "--fuse-help"]

    /// Whether `argument` may hold an option that prints and exits (`-V` also inside `-lV`);
    /// only then does a command line that parsed need the scan.
    static func mayPrintAndExit(_ argument: String) -> Bool {
        printAndExit.contains(argument) || (argument.hasPrefix("-") && !argument.hasPrefix("--") && argument.contains("V"))
    }

    /// The subcommand the arguments name (ArgumentParser takes it from the first argument
    /// only), or the default one; and the arguments that belong to it.
    static func command(for arguments: [String]) -> (type: ParsableCommand.Type, name: String?, rest: ArraySlice<String>) {
        if let first = arguments.first,
           let sub = ImageMount.configuration.subcommands.first(where: { $0.configuration.commandName == first }) {
            return (sub, first, arguments.dropFirst())
        }
        return (MountCommand.self, nil, arguments[...])
    }

    /// The option spellings of `command`, read from its help text at an unbounded width (one
    /// line per option: `  -a, --add <image>   …`).
    static func spellings(of command: ParsableCommand.Type) -> [Spelling] {
        func read(_ includeHidden: Bool) -> [(String, Bool)] {
            let text = ImageMount.helpMessage(for: command, includeHidden: includeHidden, columns: 100_000)
            var out: [(String, Bool)] = []
            for line in text.split(separator: "\n") where line.hasPrefix("  -") {
                let synopsis = line.dropFirst(2).split(separator: "  ", maxSplits: 1).first.map(String.init) ?? ""
                for piece in synopsis.split(separator: ",").map({ $0.trimmingCharacters() }) {
                    let parts = piece.split(separator: " ", maxSplits: 1)
                    guard let name = parts.first, name.hasPrefix("-") else { continue }
                    // An inverted flag is listed as one synopsis, `--progress/--no-progress`.
                    for alternative in name.split(separator: "/") where alternative.hasPrefix("-") {
                        out.append((String(alternative), parts.count > 1 && parts[1].hasPrefix("<")))
                    }
                }
            }
            return out
        }
        let shown = Set(read(false).map(\.0))
        var result = read(true).map { Spelling(name: $0.0, takesValue: $0.1, shown: shown.contains($0.0)) }
        // Built into ArgumentParser, never listed.
        result += ["--experimental-dump-help", "--generate-completion-script", "--help-hidden", "-help"].map {
            Spelling(name: $0, takesValue: $0 == "--generate-completion-script", shown: false)
        }
        // Options a command picks out of its arguments itself (an optional value, which
        // ArgumentParser cannot declare): shown in --long-options like the declared ones.
        if let own = command as? any HandParsedOptions.Type {
            result += own.handParsedOptions.map { Spelling(name: $0, takesValue: false, shown: true) }
        }
        return result
    }

    /// Scans `arguments` left to right as getopt would, stopping at `--`; returns the first
    /// unknown option or print-and-exit option met.
    static func scan(_ arguments: ArraySlice<String>, spellings: [Spelling]) -> Finding? {
        var byName: [String: Spelling] = [:]
        for s in spellings { byName[s.name] = s }
        var i = arguments.startIndex
        func valueFollows() -> Bool {
            let next = arguments.index(after: i)
            return next < arguments.endIndex && !(arguments[next].hasPrefix("-") && arguments[next] != "-")
        }
        while i < arguments.endIndex {
            let arg = arguments[i]
            if arg == "--" { break }
            if arg.hasPrefix("--") {
                let name = arg.split(separator: "=", maxSplits: 1).first.map(String.init) ?? arg
                guard let s = byName[name] else { return .unknown(arg) }
                if printAndExit.contains(name) { return .printAndExit(name) }
                if s.takesValue && !arg.contains("=") && valueFollows() { i = arguments.index(after: i) }
            } else if arg.hasPrefix("-") && arg.count > 1 {
                var rest = arg.dropFirst()
                while let c = rest.first {
                    rest = rest.dropFirst()
                    let name = "-" + String(c)
                    guard let s = byName[name] else { return .unknown(name) }
                    if printAndExit.contains(name) { return .printAndExit(name) }
                    if s.takesValue {
                        if rest.isEmpty && valueFollows() { i = arguments.index(after: i) }
                        break
                    }
                }
            }
            i = arguments.index(after: i)
        }
        return nil
    }

    /// Acts on a finding: prints what was asked for and exits 0, or reports the unknown option
    /// in getopt's words and exits 1.
    static func act(on finding: Finding, command: ParsableCommand.Type, name: String?, spellings: [Spelling]) -> Never {
        switch finding {
        case .unknown(let option):
            if option.hasPrefix("--") {
                usageError("unrecognized option '\(option)'", command: name)
            }
            usageError("invalid option -- '\(option.dropFirst())'", command: name)
        case .printAndExit(let option):
            switch option {
            case "--long-options", "--short-options":
                let long = option == "--long-options"
                for s in spellings where s.shown && s.name.hasPrefix("--") == long
                    && s.name != "--long-options" && s.name != "--short-options" {
                    print(s.name)
                }
            case "--fuse-help":
                MountOptionList.printHelp()
            default:
                print("imagemount \(ImageMountVersion.string)")
            }
            exit(0)
        }
    }

    /// ArgumentParser's "Missing value for '-a <image>'" in getopt's words, as the libguestfs
    /// tools print it: `option requires an argument -- 'a'`, `option '--add' requires an argument`.
    /// Any other message is returned as it is.
    static func getoptWording(_ message: String) -> String {
        let prefix = "Missing value for '"
        guard message.hasPrefix(prefix),
              let name = message.dropFirst(prefix.count).split(whereSeparator: { $0 == " " || $0 == "'" }).first,
              name.hasPrefix("-") else { return message }
        return name.hasPrefix("--") ? "option '\(name)' requires an argument" : "option requires an argument -- '\(name.dropFirst())'"
    }

    /// libguestfs's usage error: the message, then where to find help; exit status 1.
    static func usageError(_ message: String, command: String?) -> Never {
        let program = "imagemount" + (command.map { " " + $0 } ?? "")
        Diagnostics.line("imagemount: \(message)\nTry ‘\(program) --help’ for more information.\n")
        exit(1)
    }

    /// guestmount's `--format` and `--blocksize` take an optional value (`--format` alone
    /// resets to probing); ArgumentParser options always need one, so a bare one becomes its
    /// reset value. Nothing else is rewritten.
    static func normalized(_ arguments: [String]) -> [String] {
        var out: [String] = []
        for (index, arg) in arguments.enumerated() {
            if let end = arguments[..<index].firstIndex(of: "--"), end < index { out.append(arg); continue }
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            let bare = next == nil || (next?.hasPrefix("-") ?? false)
            if arg == "--format" && bare { out.append("--format=auto"); continue }
            if arg == "--blocksize" && bare { out.append("--blocksize=512"); continue }
            out.append(arg)
        }
        return out
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
