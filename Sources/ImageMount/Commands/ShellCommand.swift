import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount shell`: guestfish's way of working, for the scripts written for it: commands
/// from the arguments (`cat /etc/hostname : ls /etc`), from a file (`-f FILE`) or from
/// standard input (a `<<EOF` script), one per line, with guestfish's quoting and output; on a
/// terminal with no commands, a `><fs> ` prompt.
struct ShellCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "Run guestfish-style commands on a disk image (from the arguments, -f FILE or standard input).",
        discussion: """
            Like guestfish --ro: -a, -d, --format, -i and -m as for the other commands; the \
            commands follow the options, several separated by a ':' word (imagemount shell -a \
            vm.qcow2 -i cat /etc/hostname : ls /etc), or come one per line from -f FILE or \
            standard input, quoted as in guestfish ("..." with C escapes, '...' literally, # \
            comments, a leading - to carry on after a failing command). Without -i or -m, \
            nothing is mounted unless the image holds a single filesystem. A failing command \
            prints "imagemount: COMMAND: MESSAGE"; the script stops there (unless the command \
            was written -COMMAND) and the exit status is 1. Images are opened read-only unless \
            --rw is given (as with libguestfs-tools.conf's read_only=true); then write, mkdir, \
            rm, cp, mv, ln, chmod, chown, setxattr, upload, copy-in, tar-in and the other \
            writing commands change the guest, with guestfish's umask 022 and root as owner, \
            and every filesystem is closed clean at the end, however the script ends. Local \
            commands (!cmd) and pipes are not supported. Host files are reached only where the \
            script's own download, upload, copy-in, copy-out, tar-in and tar-out commands name \
            them (an interactive session: beneath the current directory). 'help' lists the \
            commands.
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions

    @Option(name: [.customShort("f"), .customLong("file")],
            help: ArgumentHelp("Read the commands from this file (- for standard input) instead of the arguments.", valueName: "file"))
    var scriptFile: String?

    @Argument(parsing: .captureForPassthrough,
              help: ArgumentHelp("Commands to run, separated by ':' words; with none, they are read from standard input, or at a ><fs> prompt when it is a terminal (quit or end of input ends it).", valueName: "command"))
    var words: [String] = []

    func validate() throws {
        if scriptFile != nil && !words.isEmpty {
            throw ValidationError("commands given both with -f and as arguments")
        }
    }

    func run() throws {
        // Read the script before the sandbox: -f names a host file.
        let script: [String]?
        if let scriptFile {
            script = try Self.readLines(scriptFile == "-" ? nil : scriptFile)
        } else if words.isEmpty && !KeyPrompt.isTerminal(0) {
            script = try Self.readLines(nil)
        } else {
            script = nil
        }
        // The script is split once: the scans below and the run see the same lines, and a line
        // that does not parse is reported when the run reaches it.
        let interactive = script == nil && words.isEmpty
        let parsed = script?.map { text in Result { () throws(ShellWords.SyntaxError) in try ShellWords.parse(text) } }
        let lines = parsed.map { $0.compactMap { try? $0.get() } } ?? ShellWords.fromArguments(words)
        let writable = filesystems.readWrite
        // edit's helper, which runs perl or $EDITOR, starts before any image is opened: this
        // process then parses the image inside the sandbox, which runs no program (EditorAgent.swift).
        let editor = writable && (interactive || lines.contains { ["edit", "vi", "emacs"].contains($0.command) }) ? try EditorAgent.start() : nil
        defer { editor?.finish() }
        let context: ShellContext
        if filesystems.inspect || !filesystems.mounts.isEmpty {
            let session = try Session.open(image, filesystems, writable: writable)
            context = ShellContext(guest: session.guest, tree: session.tree, writable: writable)
        } else {
            let guest = try Session.openGuest(image, writable: writable)
            // As virt-cat without -i/-m: an image with a single filesystem has it mounted.
            let candidates = guest.openableFilesystems
            let tree = candidates.count == 1 ? try? MountTree(mounting: [MountTree.Entry(device: candidates[0], mountpoint: "/")], writable: writable) : nil
            context = ShellContext(guest: guest, tree: tree, writable: writable)
        }
        // However the script ends, the filesystems are closed: a writable one written back
        // clean (bitmaps, counts, superblock), as e2fsck wants it.
        var closed = false
        defer { if !closed { try? context.close() } }
        context.editor = editor
        // Libraries are loaded when first needed, which inside the sandbox they cannot be
        // (Landlock refuses the library file): checksum's digests and tar's libarchive load here.
        if interactive || lines.contains(where: { $0.command == "checksum" }) { _ = CryptoLibrary.isLoaded }
        if interactive || ShellHostAccess.needsTar(lines) {
            TarLocale.useUTF8()
            // An interactive session without libarchive still runs; its tar commands then fail.
            if interactive { try? TarLibrary.load() } else { try TarLibrary.load() }
            if interactive || lines.contains(where: { $0.command == "tar-in" && $0.arguments.contains("acls:true") }) {
                context.tarNames = TarNameMap.loadHost()
            }
        }
        // The host paths the script's commands name, and only those (ShellHostAccess.swift).
        let rules = interactive ? ShellHostAccess.interactiveRules() : ShellHostAccess.rules(for: lines)
        // libedit, terminfo, ~/.editrc and the history file are opened now, while they can be.
        let lineEditor = interactive ? ShellLineEditor.start(context) : nil
        try Sandbox.enter(rules: rules)

        var failed = false
        var quit = false
        func execute(_ line: ShellLine) -> Bool {
            if Diagnostics.tracing { Diagnostics.line(([line.command] + line.arguments).joined(separator: " ") + "\n") }
            // guestfish's own commands, which end the script or the session.
            if ["quit", "exit", "q"].contains(line.command) && line.arguments.isEmpty {
                quit = true
                return false
            }
            do {
                guard let builtin = ShellBuiltin.byName[line.command] else {
                    throw ShellError("unknown command, use 'help' to list them")
                }
                guard builtin.arguments.contains(line.arguments.count) else {
                    throw ShellError("wrong number of arguments (\(line.arguments.count)); usage: \(builtin.usage)")
                }
                try builtin.run(context, line.arguments)
                return true
            } catch {
                try? context.flush()
                Diagnostics.line("imagemount: \(line.command): \(ShellError.describe(error))\n")
                failed = true
                return line.ignoreErrors
            }
        }
        if let parsed {
            run: for (number, result) in parsed.enumerated() {
                switch result {
                case .failure(let error):
                    try? context.flush()
                    Diagnostics.line("imagemount: line \(number + 1): \(error.message)\n")
                    failed = true
                    break run
                case .success(nil):
                    continue
                case .success(let line?):
                    if !execute(line) { break run }
                }
            }
        } else if interactive {
            let unparsed = Self.prompt(context, lineEditor) { line in _ = execute(line); return !quit }
            failed = failed || unparsed
        } else {
            for line in lines where !execute(line) { break }
        }
        try context.flush()
        closed = true
        do { try context.close() } catch {
            Diagnostics.line("imagemount: closing the filesystems: \(ShellError.describe(error))\n")
            failed = true
        }
        if failed { throw ExitCode.failure }
    }

    /// The interactive session on a terminal: guestfish's `><fs> ` prompt, one command a line,
    /// a failing command reported and the session going on, until quit or end of input. With
    /// libedit (ShellLineEditor), lines are edited, completed with Tab and kept in the history;
    /// without it, the terminal's own line editing. Returns whether a line failed to parse (the
    /// commands' failures are `execute`'s).
    static func prompt(_ context: ShellContext, _ editor: ShellLineEditor?, _ execute: (ShellLine) -> Bool) -> Bool {
        var failed = false
        try? StandardOutput.write("""

            Welcome to imagemount shell, guestfish's commands on disk images, without booting them.

            Type: 'help' for help on commands
                  'quit' to quit the shell


            """)
        var pending: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let text: String
            var ended = false
            if let editor {
                guard let line = editor.readLine(prompt: "><fs> ") else { try? StandardOutput.write("\n"); break }
                text = line
            } else {
                try? StandardOutput.write("><fs> ")
                pending.removeAll(keepingCapacity: true)
                while true {
                    let n = read(0, &byte, 1)
                    if n <= 0 { ended = true; break }
                    if byte == 0x0A { break }
                    guard pending.count < 1 << 20 else { continue }
                    pending.append(byte)
                }
                if ended && pending.isEmpty { try? StandardOutput.write("\n"); break }
                text = String(decoding: pending, as: UTF8.self)
            }
            do {
                if let line = try ShellWords.parse(text) {
                    // execute says false only for quit: a failing command ends nothing here.
                    if !execute(line) { break }
                }
            } catch {
                Diagnostics.line("imagemount: \(error.message)\n")
                failed = true
            }
            try? context.flush()
            if ended { break }
        }
        return failed
    }

    /// The lines of a host file, or of standard input (nil), at most 64 MiB.
    static func readLines(_ path: String?) throws -> [String] {
        let fd: FileDescriptor
        if let path {
            do { fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec) } catch {
                throw CLIError(message: "\(path): \(error)")
            }
        } else {
            fd = .standardInput
        }
        defer { if path != nil { try? fd.close() } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
            if n == 0 { break }
            bytes += chunk[..<n]
            guard bytes.count <= 64 << 20 else { throw CLIError(message: "\(path ?? "standard input"): script larger than 64 MiB") }
        }
        return bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }
}
