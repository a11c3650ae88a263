import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// The drives to open, spelled as in guestmount: `-a IMAGE` (repeatable), `--format` and
/// `--blocksize` (each applying to the `-a` options after it), `-d`, the keys; and the options
/// every libguestfs tool has (`GlobalOptions`).
struct ImageOptions: ParsableArguments {
    @OptionGroup var global: GlobalOptions
    @OptionGroup var rbd: RBDOptions

    @Option(name: [.customShort("a"), .customLong("add")],
            help: ArgumentHelp("Add a disk image (raw, qcow2, vmdk, vpc (VHD), vhdx, vdi, qcow (version 1), qed or parallels): a path, an NBD URI (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, nbds:// for TLS), or a Ceph RBD image (rbd:POOL/IMAGE[@SNAP], rbd://[HOST[:PORT]]/POOL/IMAGE[@SNAP]; a snapshot is read-only). Repeat for several disks: the first is /dev/sda, the second /dev/sdb.",
                               valueName: "image"),
            transform: { Positioned($0) })
    var addedImages: [Positioned<String>] = []

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
            help: ArgumentHelp("Format of the -a images that follow: raw, qcow2, vpc (VHD; a fixed VHD probes as raw, as in QEMU), vdi (VirtualBox), vhdx (Hyper-V), qcow (version 1), qed or parallels. Without it the format is probed; --format alone (or --format=auto) goes back to probing for the -a options after it. A --format after the last -a is an error, as in libguestfs.",
                               valueName: "raw|qcow2|vpc|vdi|vhdx|vmdk|qcow|qed|parallels|auto"),
            transform: { Positioned($0) })
    var formats: [Positioned<String>] = []

    @Option(name: .customLong("blocksize"),
            help: ArgumentHelp("Sector size of the -a images that follow, 512 (the default) or 4096: the unit of their MBR and GPT partition tables. --blocksize alone goes back to 512.",
                               valueName: "512|4096"),
            transform: { Positioned($0) })
    var blocksizes: [Positioned<String>] = []

    @Flag(name: .customLong("echo-keys"),
          help: "Show the passphrase as it is typed at the key prompt (by default echo is turned off).")
    var echoKeys = false

    @Flag(name: .customLong("selinux"), help: "Accepted and ignored, as in libguestfs (which kept it for backwards compatibility).")
    var selinux = false

    @Option(name: .customLong("key"),
            help: ArgumentHelp("Key for an encrypted qcow2 image or LUKS volume, as in libguestfs: ID:key:PASSPHRASE or ID:file:FILENAME, where ID is a device (/dev/sda2, /dev/VG/LV), a LUKS UUID, an image path, or 'all'. Repeatable.",
                               valueName: "selector"))
    var keySelectors: [String] = []

    @Flag(name: .customLong("keys-from-stdin"),
          help: "Read a passphrase from standard input, one line for each encrypted image or volume that no --key covers.")
    var keysFromStdin = false

    @Option(name: .customLong("max-kdf-iterations"),
            help: ArgumentHelp("Refuse LUKS key slots whose PBKDF2 needs more iterations than this (default \(LUKSKDFLimits.default.maxPBKDF2Iterations), above what cryptsetup's and qemu-img's 2-second defaults make on a fast machine; a hostile image could ask for billions). Raise it for an image made with a long --iter-time.",
                               valueName: "count"))
    var maxKDFIterations: UInt32?

    @Option(name: .customLong("max-kdf-memory"),
            help: ArgumentHelp("Refuse LUKS2 argon2 key slots needing more memory than this many KiB (default \(LUKSKDFLimits.default.maxArgon2MemoryKiB); cryptsetup's default is 1 GiB).",
                               valueName: "KiB"))
    var maxKDFMemory: UInt32?

    /// The KDF cost caps: the defaults, or what --max-kdf-iterations/--max-kdf-memory say.
    var kdfLimits: LUKSKDFLimits {
        var limits = LUKSKDFLimits.default
        if let maxKDFIterations { limits.maxPBKDF2Iterations = maxKDFIterations }
        if let maxKDFMemory {
            limits.maxArgon2MemoryKiB = maxKDFMemory
            limits.maxArgon2Cost = max(limits.maxArgon2Cost, UInt64(maxKDFMemory) * 8)
        }
        return limits
    }

    /// Internal: the mount server reads its keys from this descriptor (see Daemon.swift), so
    /// that no key travels on its command line.
    @Option(name: .customLong("key-fd"), help: .hidden)
    var keyFD: Int32?

    /// Set before parsing for a command that, like virt-df, examines every libvirt domain when
    /// no drive is given (`ExaminesAllDomains`).
    nonisolated(unsafe) static var drivesOptional = false

    func validate() throws {
        for selector in keySelectors {
            let parts = selector.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            // Never echo the selector back: it holds the passphrase.
            guard parts.count == 3, !parts[0].isEmpty, parts[1] == "key" || parts[1] == "file" else {
                throw ValidationError("--key: expected ID:key:PASSPHRASE or ID:file:FILENAME (ID a device, a LUKS UUID, an image path or 'all')")
            }
        }
        if images.isEmpty && domains.isEmpty && !Self.drivesOptional {
            throw ValidationError("no disk image given: add one with -a IMAGE or -d DOMAIN")
        }
        for f in formats.map(\.value) where f != "auto" && f != "" && ImageFormat(rawValue: f) == nil {
            throw ValidationError("unknown --format '\(f)': use \(ImageFormat.allCases.map(\.rawValue).joined(separator: ", ")) or auto")
        }
        for b in blocksizes.map(\.value) where b != "" && UInt64(b) != 512 && UInt64(b) != 4096 {
            throw ValidationError("--blocksize=\(b): use 512 or 4096")
        }
        // As libguestfs (CHECK_OPTION_format_consumed): a setting that no -a follows is a mistake.
        let lastImage = addedImages.last?.position ?? -1
        if let f = formats.last, f.position > lastImage {
            throw ValidationError("--format=\(f.value) comes after the last -a: it applies to the -a options after it")
        }
        if let b = blocksizes.last, b.position > lastImage {
            throw ValidationError("--blocksize=\(b.value) comes after the last -a: it applies to the -a options after it")
        }
    }

    /// The -a paths, in order.
    var images: [String] { addedImages.map(\.value) }

    /// The drives in command-line order, each with the `--format` and `--blocksize` in force
    /// where it appears (guestmount's rule: they apply to the `-a` options *after* them).
    func drives() throws -> [DriveSpec] {
        var drives = orderedImages()
        for name in domains {
            let domain = try Self.loadDomain(name, connect: connect)
            if domain.disks.isEmpty { throw CLIError(message: "domain \(name): has no disks") }
            drives += try domain.disks.map { disk in
                var client = rbd.client
                // A keyring the user gave wins over the domain's secret, as the user's words do.
                if let uuid = disk.cephSecretUUID, client.keyring == nil, client.key == nil {
                    client.key = try Self.cephKey(secret: uuid, domain: name, connect: connect)
                }
                return DriveSpec(path: disk.path, format: disk.format, rbdClient: client)
            }
        }
        return drives
    }

    /// The keys of --key, with --keys-from-stdin or (on a terminal, when no --key was given) a
    /// no-echo prompt for any encrypted image or volume no selector covers.
    func keyStore() throws -> KeyStore {
        let limits = kdfLimits
        if let keyFD { return KeyStore(entries: try Daemon.readKeys(from: keyFD), kdfLimits: limits) }
        let entries = try keySelectors.map { try KeyStore.parseSelector($0) }
        if keysFromStdin {
            return KeyStore(entries: entries, fallback: { _ in KeyPrompt.readLine(fd: 0) }, kdfLimits: limits)
        }
        if entries.isEmpty, KeyPrompt.isTerminal(0) {
            let echo = echoKeys
            return KeyStore(entries: entries, fallback: { name in KeyPrompt.prompt("Enter key or passphrase (\"\(name)\"): ", echo: echo) },
                            kdfLimits: limits)
        }
        return KeyStore(entries: entries, kdfLimits: limits)
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

    /// The -a images in command-line order, each with the --format and --blocksize in force
    /// where it appears: one merge of the three option lists by their positions.
    private func orderedImages() -> [DriveSpec] {
        enum Event { case image(String), format(String), blocksize(String) }
        let events = (addedImages.map { ($0.position, Event.image($0.value)) }
            + formats.map { ($0.position, Event.format($0.value)) }
            + blocksizes.map { ($0.position, Event.blocksize($0.value)) })
            .sorted { $0.0 < $1.0 }
        var format: ImageFormat? = nil
        var sectorSize: UInt64 = 512
        var drives: [DriveSpec] = []
        for (_, event) in events {
            switch event {
            case .format(let f): format = ImageFormat(rawValue: f)
            case .blocksize(let b): sectorSize = UInt64(b) ?? 512
            case .image(let path): drives.append(DriveSpec(path: path, format: format, sectorSize: sectorSize, rbdClient: rbd.client))
            }
        }
        return drives
    }
}
