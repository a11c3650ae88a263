import ArgumentParser

/// A parser for the few command lines that helper commands are mostly run with
/// (`cat -a IMAGE [-m DEV | -i] PATH...`), which fills the same declared command that
/// swift-argument-parser would and hands back nil for everything else.
///
/// Why: swift-argument-parser finds a command's options by reflection. For one `cat`, it builds the
/// argument set of the root, of the default subcommand (`mount`, only to learn whether it takes
/// passthrough arguments), of two completion-script pseudo-commands and of `cat` itself (twice):
/// about a third of a `cat` of one small file (bench/profile.sh). The declared commands stay the
/// one source of options, help, man pages and error wording: this parser knows only a subset of
/// their spellings, refuses anything outside it (help, -V, --key, an unknown option, a combined
/// `-ir`, `--`, a value that looks like an option, a missing path), and runs the same validate()
/// that the library would; any refusal or validation error goes to the full parse, which then
/// reports it in its own words. `FastCommandLineTests` checks, for many command lines, that both
/// parses give the same command, field for field, and that every field is set.
enum FastCommandLine {
    /// The command, fully parsed and validated, or nil when the full parser must decide.
    static func parse(_ arguments: [String]) -> ParsableCommand? {
        guard arguments.first == CatCommand.configuration.commandName else { return nil }
        guard let options = scan(arguments.dropFirst()), !options.positionals.isEmpty else { return nil }
        var command = CatCommand()
        command.paths = options.positionals
        do {
            command.image = try options.validatedImageOptions()
            command.filesystems = try options.validatedFilesystemOptions()
            try command.validate()
        } catch {
            return nil
        }
        return command
    }

    /// Any other named subcommand (not `mount`, the default, nor `help`), parsed by the library
    /// with the subcommand as the root: the same declared options, the same validate(), but
    /// without the argument sets of the root and of `mount` that a parse from the root builds
    /// first (a sixth of a fast `diff`). Nil, and the full parse decides, for anything that
    /// prints and exits (help, a version, completion scripts) or fails: the full parse then
    /// words the error as the root's usage. `FastCommandLineTests` checks, for command lines of
    /// every subcommand, that both parses give the same command.
    static func parseSubcommand(_ arguments: [String]) -> ParsableCommand? {
        guard let first = arguments.first, let type = subcommandTypes[first],
              !arguments.contains(where: CommandLineCheck.mayPrintAndExit) else { return nil }
        // As Main sets it for the full parse: ImageOptions.validate() reads it.
        ImageOptions.drivesOptional = type is any ExaminesAllDomains.Type
        // `--help` parses too, into the library's help command: only the subcommand itself will do.
        guard let command = try? type.parseAsRoot(Array(arguments.dropFirst())),
              Swift.type(of: command) == type else { return nil }
        return command
    }

    /// The subcommands `parseSubcommand` takes, by name (a test checks them against the declarations).
    static let subcommandTypes: [String: ParsableCommand.Type] = [
        "unmount": UnmountCommand.self, "cat": CatCommand.self, "ls": LsCommand.self,
        "copy-out": CopyOutCommand.self, "copy-in": CopyInCommand.self, "tar-out": TarOutCommand.self,
        "tar-in": TarInCommand.self, "edit": EditCommand.self, "df": DfCommand.self,
        "filesystems": FilesystemsCommand.self, "inspect": InspectCommand.self, "info": InfoCommand.self,
        "check": CheckCommand.self, "commit": CommitCommand.self, "diff": DiffCommand.self,
        "shell": ShellCommand.self,
    ]

    /// Every subcommand's name: the ones `parseSubcommand` takes, the default and the library's
    /// `help` (a test checks them against the declarations).
    static let subcommandNames: Set<String> = Set(subcommandTypes.keys).union(["mount", "help"])

    /// What the arguments said, before it is put into the declared option groups.
    struct Options {
        var added: [Positioned<String>] = []
        var formats: [Positioned<String>] = []
        var mounts: [String] = []
        var root: String?
        var inspect = false
        var readOnly = false
        var readWrite = false
        var verbose = false
        var trace = false
        var positionals: [String] = []
        // What only commands that build their own drive options (diff) fill in.
        var blocksizes: [Positioned<String>] = []
        var domains: [String] = []
        var connect: String?
        var keySelectors: [String] = []
        var keysFromStdin = false
        var echoKeys = false

        /// The drive options, every field set, as the library's parse of the same arguments
        /// would give them (`Positioned` numbers them in the order they are made).
        func imageOptions() -> ImageOptions {
            var global = GlobalOptions()
            global.verbose = verbose
            global.trace = trace
            global.version = false
            global.longOptions = false
            global.shortOptions = false
            var rbd = RBDOptions()
            rbd.rbdConf = nil
            rbd.rbdID = nil
            rbd.keyring = nil
            var image = ImageOptions()
            image.global = global
            image.rbd = rbd
            image.addedImages = added
            image.domains = domains
            image.connect = connect
            image.snapshot = nil
            image.formats = formats
            image.blocksizes = blocksizes
            image.echoKeys = echoKeys
            image.selinux = false
            image.keySelectors = keySelectors
            image.keysFromStdin = keysFromStdin
            image.maxKDFIterations = nil
            image.maxKDFMemory = nil
            image.keyFD = nil
            return image
        }

        /// `imageOptions()` with the validate()s the library's parse runs on it.
        func validatedImageOptions() throws -> ImageOptions {
            var image = imageOptions()
            try image.global.validate()
            try image.rbd.validate()
            try image.validate()
            return image
        }

        /// `filesystemOptions()` with the validate() the library's parse runs on it.
        func validatedFilesystemOptions() throws -> FilesystemOptions {
            let filesystems = filesystemOptions()
            try filesystems.validate()
            return filesystems
        }

        func filesystemOptions() -> FilesystemOptions {
            var filesystems = FilesystemOptions()
            filesystems.inspect = inspect
            filesystems.root = root
            filesystems.mounts = mounts
            filesystems.readOnly = readOnly
            filesystems.readWrite = readWrite
            return filesystems
        }
    }

    /// The options this parser knows, in the spellings the declarations give them; nil at the
    /// first argument it does not know, and at a flag or single-valued option given twice
    /// (whatever the library makes of that, it decides).
    static func scan(_ arguments: ArraySlice<String>) -> Options? {
        var options = Options()
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("-") else {
                // A subcommand's name here is a path to the library too, but leave the
                // doubt to it.
                if subcommandNames.contains(argument) { return nil }
                options.positionals.append(argument)
                continue
            }
            // `--name=value`, or `--name value` / `-n value`.
            var name = argument
            var attached: String? = nil
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                attached = String(argument[argument.index(after: equals)...])
            }
            func value() -> String? {
                // The library takes `--name=` for a missing value, not an empty one.
                if let attached { return attached.isEmpty ? nil : attached }
                guard let next = rest.popFirst(), !next.hasPrefix("-") else { return nil }
                return next
            }
            switch name {
            case "-a", "--add":
                guard let v = value() else { return nil }
                options.added.append(Positioned(v))
            case "--format":
                guard let v = value() else { return nil }
                options.formats.append(Positioned(v))
            case "-m", "--mount":
                guard let v = value() else { return nil }
                options.mounts.append(v)
            case "--root":
                guard options.root == nil, let v = value() else { return nil }
                options.root = v
            case "-i", "--inspector":
                guard attached == nil, !options.inspect else { return nil }
                options.inspect = true
            case "-r", "--ro":
                guard attached == nil, !options.readOnly else { return nil }
                options.readOnly = true
            case "-w", "--rw":
                guard attached == nil, !options.readWrite else { return nil }
                options.readWrite = true
            case "-v", "--verbose":
                guard attached == nil, !options.verbose else { return nil }
                options.verbose = true
            case "-x", "--trace":
                guard attached == nil, !options.trace else { return nil }
                options.trace = true
            default:
                return nil
            }
        }
        return options
    }
}
