import ArgumentParser
import GuestFSBlock
import GuestFSFilesystem
import GuestFS
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount diff`: like virt-diff, the differences between the files of two guests.
///
/// The options, the records and the way a change is shown follow guestfs-tools `diff/diff.c`
/// (`visit_entry`, `diff_guests`, `changed`, `output_file` and the `output_*` helpers).
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "List the differences between the files of two disk images or guests.",
        discussion: """
            Like virt-diff. -a (or -d) adds the drives of the first guest, -A (or -D) those of \
            the second; --format and --blocksize apply to the -a and -A options after them. \
            Both guests are inspected (or mounted as -m says) and their trees compared path by \
            path. A path only in the first is listed as '- TYPE MODE SIZE PATH', one only in the \
            second as '+ ...'. A regular file whose size, modification or change time differs \
            (or whose checksum differs, with --checksum) is listed as '= ...' followed by its \
            changes as 'diff -u' shows them (nothing for binary files) and '@@ End of diff @@'; \
            any other change of its status or extended attributes gives the old record '-', the \
            new '+' and '# changed: FIELDS' (st_mode, st_uid, st_size, ..., xattrs). Access \
            times, directory times and directory link counts are ignored unless --atime, \
            --dir-times or --dir-links ask for them. --csv writes comma-separated records and \
            no file changes. \
            When the second guest's drives are qcow2 overlays whose backing chain holds the \
            first guest's drives (a clone of a template), only what the overlays allocate is \
            looked at: the filesystem driver says which files those ranges can touch (ext2/3/4 \
            does; for other filesystems, LVM and LUKS the whole tree is walked), so the diff \
            costs what changed, not the size of the tree. The output is the same as the full \
            walk's; --no-fast (or IMAGEMOUNT_DIFF_FULL=1) forces the full walk. \
            Example: imagemount diff -a template.img --format=qcow2 -A clone.qcow2
            """,
        helpNames: [.long]
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: [.customShort("a"), .customLong("add")],
            help: ArgumentHelp("Add a disk image of the first guest (repeat for several disks).", valueName: "image"),
            transform: { Positioned($0) })
    var firstImages: [Positioned<String>] = []

    @Option(name: .customShort("A"),
            help: ArgumentHelp("Add a disk image of the second guest (repeat for several disks).", valueName: "image"),
            transform: { Positioned($0) })
    var secondImages: [Positioned<String>] = []

    @Option(name: [.customShort("d"), .customLong("domain")],
            help: ArgumentHelp("Add the disks of a libvirt domain as the first guest.", valueName: "domain"))
    var firstDomains: [String] = []

    @Option(name: .customShort("D"),
            help: ArgumentHelp("Add the disks of a libvirt domain as the second guest.", valueName: "domain"))
    var secondDomains: [String] = []

    @Option(name: [.customShort("c"), .customLong("connect")],
            help: ArgumentHelp("libvirt URI for -d and -D, passed to virsh.", valueName: "uri"))
    var connect: String?

    @Option(name: .customLong("format"),
            help: ArgumentHelp("Format of the -a and -A images that follow (raw, qcow2, vmdk, ...); --format alone goes back to probing.",
                               valueName: "raw|qcow2|vpc|vdi|vhdx|vmdk|qcow|qed|parallels|auto"),
            transform: { Positioned($0) })
    var formats: [Positioned<String>] = []

    @Option(name: .customLong("blocksize"),
            help: ArgumentHelp("Sector size of the -a and -A images that follow, 512 or 4096.", valueName: "512|4096"),
            transform: { Positioned($0) })
    var blocksizes: [Positioned<String>] = []

    @Option(name: .customLong("key"),
            help: ArgumentHelp("Key for an encrypted image or LUKS volume of either guest: ID:key:PASSPHRASE or ID:file:FILENAME. Repeatable.",
                               valueName: "selector"))
    var keySelectors: [String] = []

    @Flag(name: .customLong("keys-from-stdin"), help: "Read passphrases from standard input, one line for each encrypted image or volume no --key covers.")
    var keysFromStdin = false

    @Flag(name: .customLong("echo-keys"), help: "Show the passphrase as it is typed at the key prompt.")
    var echoKeys = false

    @Flag(name: [.customShort("i"), .customLong("inspector")],
          help: "Inspect both guests and mount their filesystems as their /etc/fstab says (the default when an operating system is found).")
    var inspect = false

    @Option(name: [.customShort("m"), .customLong("mount")],
            help: ArgumentHelp("Mount this filesystem in both guests' trees instead of inspecting, as for the other commands.",
                               valueName: "device[:mountpoint[:options[:fstype]]]"))
    var mounts: [String] = []

    @Flag(name: .customLong("all"), help: "Same as --extra-stats --times --uids --xattrs.")
    var all = false

    @Flag(name: .customLong("atime"), help: "Do not ignore changes of access times (and show them with --times).")
    var atime = false

    @Flag(name: .customLong("csv"), help: "Write comma-separated values, and no file changes.")
    var csv = false

    @Flag(name: [.customLong("dir-links"), .customLong("dir-link"), .customLong("dir-nlink"), .customLong("dir-nlinks")],
          help: "Do not ignore changes of the link count of directories.")
    var dirLinks = false

    @Flag(name: [.customLong("dir-times"), .customLong("dir-time")], help: "Do not ignore changes of the times of directories.")
    var dirTimes = false

    @Flag(name: [.customLong("extra-stats"), .customLong("extra-stat")],
          help: "Add the device, inode number, link count, device number and 512-byte blocks to each record.")
    var extraStats = false

    @Flag(name: [.customShort("h"), .customLong("human-readable")], help: "Show sizes rounded with a K, M, G... suffix.")
    var human = false

    @Flag(name: [.customLong("times"), .customLong("time")], help: "Add the modification and change times (and the access time with --atime) to each record.")
    var times = false

    @Flag(name: .customLong("time-t"), help: "Add the times as seconds since the epoch.")
    var timeT = false

    @Flag(name: .customLong("time-relative"), help: "Add the times as seconds before now.")
    var timeRelative = false

    @Flag(name: .customLong("time-days"), help: "Add the times as whole days before now.")
    var timeDays = false

    @Flag(name: [.customLong("uids"), .customLong("uid")], help: "Add the owner's UID and GID to each record.")
    var uids = false

    @Flag(name: [.customLong("xattrs"), .customLong("xattr")], help: "Add each file's extended attributes (name, then value) to its record.")
    var xattrs = false

    @Flag(name: .customLong("no-fast"), help: "Walk both trees whole even when the second guest is a qcow2 overlay of the first.")
    var noFast = false

    // --checksum[=TYPE] takes an optional value, as in virt-ls (see LsCommand): picked out of
    // the inputs no declared option claimed; anything else left over is an error.
    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("""
                  --checksum[=TYPE] (or --checksums[=TYPE]): compare regular files by the checksum \
                  of their contents too, and show it in their records; TYPE is crc, md5 (the \
                  default), sha1, sha224, sha256, sha384 or sha512.
                  """, valueName: "--checksum[=TYPE]"))
    var inputs: [String] = []

    var request: ChecksumRequest { ChecksumRequest(inputs) }

    func validate() throws {
        let request = self.request
        if let unknown = request.unknownOptions.first { throw ValidationError("Unknown option '\(unknown)'") }
        if let extra = request.directories.first {
            throw ValidationError("extra argument ‘\(extra)’ on command line. Make sure to specify the argument for --checksum or --format like '--format=\(extra)'.")
        }
        if firstImages.isEmpty && firstDomains.isEmpty { throw ValidationError("you must specify at least one -a or -d option.") }
        if secondImages.isEmpty && secondDomains.isEmpty { throw ValidationError("you must specify at least one -A or -D option.") }
        if human && csv { throw ValidationError("you cannot use -h and --csv options together.") }
        if inspect && !mounts.isEmpty { throw ValidationError("-i and -m cannot be used together") }
        if let type = request.type, FileChecksum(type: type) == nil {
            throw ValidationError("unknown checksum type, expecting crc|md5|sha1|sha224|sha256|sha384|sha512")
        }
        // CHECK_OPTION_format_consumed, across -a and -A together.
        let lastImage = (firstImages + secondImages).map(\.position).max() ?? -1
        if let f = formats.last, f.position > lastImage {
            throw ValidationError("--format=\(f.value) comes after the last -a or -A: it applies to the -a and -A options after it")
        }
        if let b = blocksizes.last, b.position > lastImage {
            throw ValidationError("--blocksize=\(b.value) comes after the last -a or -A: it applies to the -a and -A options after it")
        }
    }

    /// One guest's drive options, as `ImageOptions` reads them: its images with the --format
    /// and --blocksize in force where each stands (the settings after its last image apply
    /// only to the other guest's), its domains and the shared key options.
    func imageOptions(images: [Positioned<String>], domains: [String]) throws -> ImageOptions {
        enum Event { case image(String), format(String), blocksize(String) }
        let last = images.map(\.position).max() ?? -1
        let events = (images.map { ($0.position, Event.image($0.value)) }
            + formats.filter { $0.position < last }.map { ($0.position, Event.format($0.value)) }
            + blocksizes.filter { $0.position < last }.map { ($0.position, Event.blocksize($0.value)) })
            .sorted { $0.0 < $1.0 }
        // Made field by field rather than by a second parse of spelled-out arguments: that
        // parse's reflection cost a tenth of a fast diff (bench/diff.sh).
        var options = FastCommandLine.Options()
        for (_, event) in events {
            switch event {
            case .image(let path): options.added.append(Positioned(path))
            case .format(let f): options.formats.append(Positioned(f))
            case .blocksize(let b): options.blocksizes.append(Positioned(b))
            }
        }
        options.domains = domains
        options.connect = connect
        options.keySelectors = keySelectors
        options.keysFromStdin = keysFromStdin
        options.echoKeys = echoKeys
        do {
            return try options.validatedImageOptions()
        } catch {
            throw CLIError(message: ImageOptions.message(for: error))
        }
    }

    func filesystemOptions() throws -> FilesystemOptions {
        var options = FastCommandLine.Options()
        options.inspect = inspect
        options.mounts = mounts
        do {
            return try options.validatedFilesystemOptions()
        } catch {
            throw CLIError(message: FilesystemOptions.message(for: error))
        }
    }

    var settings: TreeDiff.Settings {
        var s = TreeDiff.Settings()
        s.atime = atime
        s.csv = csv
        s.dirLinks = dirLinks
        s.dirTimes = dirTimes
        s.extraStats = extraStats || all
        s.human = human
        s.uids = uids || all
        s.xattrs = xattrs || all
        s.checksum = request.type
        // diff.c: --time-t, --time-relative and --time-days each also turn --times on.
        if timeDays { s.timeStyle = .daysAgo } else if timeRelative { s.timeStyle = .secondsAgo } else if timeT { s.timeStyle = .epoch }
        else if times || all { s.timeStyle = .calendar }
        s.now = Int64(time(nil))
        return s
    }

    /// Whether the full walk is forced (--no-fast, or IMAGEMOUNT_DIFF_FULL set to anything but 0).
    var fullWalkForced: Bool {
        if noFast { return true }
        guard let value = getenv("IMAGEMOUNT_DIFF_FULL") else { return false }
        let text = String(cString: value)
        return !text.isEmpty && text != "0"
    }

    func run() throws {
        global.apply()
        let fs = try filesystemOptions()
        let first = try Session.open(imageOptions(images: firstImages, domains: firstDomains), fs)
        let second = try Session.open(imageOptions(images: secondImages, domains: secondDomains), fs)
        // The overlay maps are read before the sandbox: they are in the images already open,
        // but a backing file is compared with the first guest's drives by its host identity.
        let overlap = fullWalkForced ? nil : OverlayChanges.find(first: first.guest, second: second.guest)
        try Sandbox.enter()
        let scope = try overlap.flatMap { try DiffScope.make(first: first.tree, second: second.tree, firstGuest: first.guest, secondGuest: second.guest,
                                                                   changes: $0, content: request.type != nil) }
        Diagnostics.trace(scope.map { "diff: fast path, \($0.summary)" } ?? "diff: full walk")
        var diff = TreeDiff(first: first.tree, second: second.tree, settings: settings, scope: scope)
        try diff.run()
    }
}

extension DiffCommand: HandParsedOptions {
    /// --checksum[=TYPE] and --checksums[=TYPE] (ChecksumRequest), known to CommandLineCheck.
    static let handParsedOptions = ["--checksum", "--checksums"]
}
