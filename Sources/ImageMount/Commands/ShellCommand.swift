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
            was written -COMMAND) and the exit status is 1. Images are opened read-only: the \
            commands that write are not built yet, and neither are local commands (!cmd) or \
            pipes. download writes host files only in the directories of the download commands \
            of the script. 'help' lists the commands.
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
        if filesystems.readWrite {
            throw ValidationError("--rw: the shell's writing commands are not built yet; it opens images read-only")
        }
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
        let context: ShellContext
        if filesystems.inspect || !filesystems.mounts.isEmpty {
            let session = try Session.open(image, filesystems)
            context = ShellContext(guest: session.guest, tree: session.tree)
        } else {
            let guest = try Session.openGuest(image)
            // As virt-cat without -i/-m: an image with a single filesystem has it mounted.
            let candidates = guest.openableFilesystems
            let tree = candidates.count == 1 ? try? MountTree(mounting: [MountTree.Entry(device: candidates[0], mountpoint: "/")], writable: false) : nil
            context = ShellContext(guest: guest, tree: tree)
        }
        // libcrypto is loaded when first needed, which inside the sandbox it cannot be
        // (Landlock refuses the library file): checksum's digests load it here.
        let interactive = script == nil && words.isEmpty
        if interactive || (script ?? words).contains(where: { $0.contains("checksum") }) { _ = CryptoLibrary.isLoaded }
        // download to a host file: the directories the script names may be written in, and
        // only those (held open here, before the sandbox; closed when the process ends).
        // The script is split once: this scan and the run see the same lines, and a line that
        // does not parse is reported when the run reaches it.
        let parsed = script?.map { text in Result { () throws(ShellWords.SyntaxError) in try ShellWords.parse(text) } }
        let lines = parsed.map { $0.compactMap { try? $0.get() } } ?? ShellWords.fromArguments(words)
        var writable: [Int32] = []
        for line in lines where line.command == "download" && line.arguments.count == 2 && line.arguments[1] != "-" {
            let local = line.arguments[1]
            let parent = local.contains("/") ? String(local[..<(local.lastIndex(of: "/") ?? local.startIndex)]) : "."
            let fd = Glibc.open(parent.isEmpty ? "/" : parent, hostio_o_path | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { writable.append(fd) }
        }
        try Sandbox.enter(writableBeneath: writable)

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
            let unparsed = Self.prompt(context) { line in _ = execute(line); return !quit }
            failed = failed || unparsed
        } else {
            for line in lines where !execute(line) { break }
        }
        try context.flush()
        if failed { throw ExitCode.failure }
    }

    /// The interactive session on a terminal: guestfish's `><fs> ` prompt, one command a line,
    /// a failing command reported and the session going on, until quit or end of input. Line
    /// editing is the terminal's own (erase, kill, word erase); there is no completion or history
    /// yet. Returns whether a line failed to parse (the commands' failures are `execute`'s).
    static func prompt(_ context: ShellContext, _ execute: (ShellLine) -> Bool) -> Bool {
        var failed = false
        try? StandardOutput.write("""

            Welcome to imagemount shell, guestfish's commands on disk images, without booting them.

            Type: 'help' for help on commands
                  'quit' to quit the shell


            """)
        var pending: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            try? StandardOutput.write("><fs> ")
            pending.removeAll(keepingCapacity: true)
            var ended = false
            while true {
                let n = read(0, &byte, 1)
                if n <= 0 { ended = true; break }
                if byte == 0x0A { break }
                guard pending.count < 1 << 20 else { continue }
                pending.append(byte)
            }
            if ended && pending.isEmpty { try? StandardOutput.write("\n"); break }
            do {
                if let line = try ShellWords.parse(String(decoding: pending, as: UTF8.self)) {
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
