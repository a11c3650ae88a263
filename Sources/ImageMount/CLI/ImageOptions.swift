import ArgumentParser
import GuestFS

/// The drives to open, spelled as in guestmount: `-a IMAGE` (repeatable) and `--format`.
struct ImageOptions: ParsableArguments {
    @Option(name: [.customShort("a"), .customLong("add")],
            help: ArgumentHelp("Add a disk image (raw or qcow2). Repeat for several disks: the first is /dev/sda, the second /dev/sdb.",
                               valueName: "image"))
    var images: [String] = []

    @Option(name: [.customShort("d"), .customLong("domain")],
            help: ArgumentHelp("Add the disks of a libvirt domain, in order, with their formats (from `virsh dumpxml`, or /etc/libvirt/qemu/DOMAIN.xml without virsh). Opened read-only; --rw is refused while the domain runs.",
                               valueName: "domain"))
    var domains: [String] = []

    @Option(name: [.customShort("c"), .customLong("connect")],
            help: ArgumentHelp("libvirt URI for -d, passed to virsh.", valueName: "uri"))
    var connect: String?

    @Option(name: .customLong("snapshot"),
            help: ArgumentHelp("Open the state saved in this qcow2 internal snapshot (name or ID) instead of the current one; read-only.",
                               valueName: "name|id"))
    var snapshot: String?

    @Option(name: .customLong("format"),
            help: ArgumentHelp("Format of the -a images that follow: raw or qcow2. Without it the format is probed. --format=auto goes back to probing.",
                               valueName: "raw|qcow2|auto"))
    var formats: [String] = []

    @Option(name: .customLong("key"),
            help: ArgumentHelp("Key for an encrypted qcow2 image or LUKS volume, as in libguestfs: ID:key:PASSPHRASE or ID:file:FILENAME, where ID is a device (/dev/sda2, /dev/VG/LV), a LUKS UUID, an image path, or 'all'. Repeatable.",
                               valueName: "selector"))
    var keySelectors: [String] = []

    @Flag(name: .customLong("keys-from-stdin"),
          help: "Read a passphrase from standard input, one line for each encrypted image or volume that no --key covers.")
    var keysFromStdin = false

    /// Internal: the mount server reads its keys from this descriptor (see Daemon.swift), so
    /// that no key travels on its command line.
    @Option(name: .customLong("key-fd"), help: .hidden)
    var keyFD: Int32?

    func validate() throws {
        for selector in keySelectors {
            let parts = selector.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            // Never echo the selector back: it holds the passphrase.
            guard parts.count == 3, !parts[0].isEmpty, parts[1] == "key" || parts[1] == "file" else {
                throw ValidationError("--key: expected ID:key:PASSPHRASE or ID:file:FILENAME (ID a device, a LUKS UUID, an image path or 'all')")
            }
        }
        if images.isEmpty && domains.isEmpty { throw ValidationError("no disk image given: add one with -a IMAGE or -d DOMAIN") }
        for f in formats where f != "auto" && ImageFormat(rawValue: f) == nil {
            throw ValidationError("unknown --format '\(f)': use raw, qcow2 or auto")
        }
    }

    /// The drives in command-line order, each with the `--format` in force where it appears.
    ///
    /// guestmount's `--format` applies to the `-a` options *after* it. ArgumentParser keeps no
    /// order between different options, so the order is recovered from the raw arguments; the
    /// parsed arrays are the check that both readings agree.
    func drives(arguments: [String] = CommandLine.arguments) throws -> [DriveSpec] {
        var drives = orderedImages(arguments: arguments)
        for name in domains {
            let domain = try Self.loadDomain(name, connect: connect)
            if domain.disks.isEmpty { throw CLIError(message: "domain \(name): has no disks") }
            drives += domain.disks.map { DriveSpec(path: $0.path, format: $0.format) }
        }
        return drives
    }

    /// The keys of --key, with --keys-from-stdin or (on a terminal, when no --key was given) a
    /// no-echo prompt for any encrypted image or volume no selector covers.
    func keyStore() throws -> KeyStore {
        if let keyFD { return KeyStore(entries: try Daemon.readKeys(from: keyFD)) }
        let entries = try keySelectors.map { try KeyStore.parseSelector($0) }
        if keysFromStdin {
            return KeyStore(entries: entries, fallback: { _ in KeyPrompt.readLine(fd: 0) })
        }
        if entries.isEmpty, KeyPrompt.isTerminal(0) {
            return KeyStore(entries: entries, fallback: { name in KeyPrompt.prompt("Enter key or passphrase (\"\(name)\"): ") })
        }
        return KeyStore(entries: entries)
    }

    /// Whether a domain given with -d is running now (a running guest's disks must not be written).
    func runningDomain() throws -> String? {
        try domains.first { try Self.loadDomain($0, connect: connect).isRunning }
    }

    /// The domain's XML from virsh when it is installed, else from libvirt's config folder.
    static func loadDomain(_ name: String, connect: String?) throws -> LibvirtDomain {
        guard Subprocess.exists("virsh") else { return try LibvirtDomain.load(name: name) }
        let result = try Subprocess.run(["virsh"] + (connect.map { ["-c", $0] } ?? []) + ["dumpxml", name])
        guard result.status == 0 else { throw CLIError(message: "domain \(name): virsh dumpxml failed (exit \(result.status))") }
        return try LibvirtDomain.load(name: name, xml: result.stdout)
    }

    /// The -a images in command-line order, each with the --format in force where it appears.
    private func orderedImages(arguments: [String]) -> [DriveSpec] {
        var format: ImageFormat? = nil
        var drives: [DriveSpec] = []
        var i = 1
        func value(_ arg: String, long: String) -> String? {
            if arg.hasPrefix(long + "=") { return String(arg.dropFirst(long.count + 1)) }
            if arg == long, i + 1 < arguments.count { i += 1; return arguments[i] }
            return nil
        }
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--" { break }
            if let f = value(arg, long: "--format") {
                format = ImageFormat(rawValue: f)
            } else if let path = value(arg, long: "--add") ?? value(arg, long: "-a") {
                drives.append(DriveSpec(path: path, format: format))
            } else if arg.hasPrefix("-a"), arg.count > 2, !arg.hasPrefix("--") {
                drives.append(DriveSpec(path: String(arg.dropFirst(2)), format: format))
            }
            i += 1
        }
        // Fall back to the parsed list (formats probed) if argv could not be read back the same way.
        guard drives.map(\.path) == images else { return images.map { DriveSpec(path: $0) } }
        return drives
    }
}
