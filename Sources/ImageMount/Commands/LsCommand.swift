import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount ls`: like virt-ls, directory listings from inside the disk images.
///
/// The four modes and the -lR record follow guestfs-tools `cat/ls.c` (`do_ls`, `do_ls_l`,
/// `do_ls_R`, `show_file` and the `output_*` helpers) and the walk its `common/visit` library.
struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List directories inside a disk image.",
        discussion: """
            Like virt-ls. Without options, the names in each DIRECTORY, sorted, one per line. \
            -l lists it as 'ls -la' does. -R lists every file and directory below it, as paths \
            relative to it. -lR writes one record per file, the directory itself first: type \
            (- d l c b p s), permissions in octal, size, then any fields asked for (--uids, \
            --times, --extra-stats), the full path, and the target of symbolic links; with --csv \
            the fields are comma-separated, for spreadsheets and scripts. --csv, -h, --uids, \
            the time options, --extra-stats and --checksum work only with -lR. --checksum[=TYPE] \
            adds each regular file's checksum (md5 unless TYPE says crc, sha1, sha224, sha256, \
            sha384 or sha512) before its path. Paths are absolute paths in \
            the guest; symbolic links are resolved inside the guest, never on the host. \
            On a Windows guest found by inspection (no -m), paths may also be Windows paths, as virt-cat takes them: C:\\Windows\\win.ini or c:/windows/WIN.INI, names matched ignoring case, the drive letter looked up in the guest's drive mappings. \
            Example: imagemount ls -a vm.qcow2 -lR --csv --times /etc
            """,
        helpNames: [.long]
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions

    @Flag(name: [.customShort("l"), .customLong("long")], help: "Long listing: as 'ls -la', or with -R one record per file.")
    var long = false

    @Flag(name: [.customShort("R"), .customLong("recursive")], help: "List everything below each directory.")
    var recursive = false

    @Flag(name: .customLong("csv"), help: "With -lR, write comma-separated values.")
    var csv = false

    @Flag(name: [.customShort("h"), .customLong("human-readable")], help: "With -lR, show sizes rounded with a K, M, G... suffix.")
    var human = false

    @Flag(name: [.customLong("uids"), .customLong("uid")], help: "With -lR, add the owner's UID and GID.")
    var uids = false

    @Flag(name: [.customLong("times"), .customLong("time")], help: "With -lR, add access, modification and change times (local time, YYYY-MM-DD HH:MM:SS).")
    var times = false

    @Flag(name: .customLong("time-t"), help: "With -lR, add the three times as seconds since the epoch.")
    var timeT = false

    @Flag(name: .customLong("time-relative"), help: "With -lR, add the three times as seconds before now.")
    var timeRelative = false

    @Flag(name: .customLong("time-days"), help: "With -lR, add the three times as whole days before now.")
    var timeDays = false

    @Flag(name: [.customLong("extra-stats"), .customLong("extra-stat")], help: "With -lR, add the device, inode number, link count, device number (for devices) and 512-byte blocks.")
    var extraStats = false

    // virt-ls takes --checksum[=TYPE] with an optional value (getopt `optional_argument`), a form
    // ArgumentParser has no declaration for: "--checksum /etc" and "--checksum -a x" would both
    // go wrong as an option with a value. The directory list takes every input no option
    // claimed, and `ChecksumRequest` picks the --checksum forms out of it; any other leftover
    // beginning with "-" is reported as the unknown option it is.
    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("""
                  Directories to list, as absolute paths in the guest. Among them may stand \
                  --checksum[=TYPE] (or --checksums[=TYPE]): with -lR, the checksum of each regular \
                  file is added before its path; TYPE is crc (as cksum), md5 (the default), sha1, \
                  sha224, sha256, sha384 or sha512.
                  """, valueName: "directory"))
    var inputs: [String] = []

    var request: ChecksumRequest { ChecksumRequest(inputs) }

    /// The directories to list, in command-line order.
    var directories: [String] { request.directories }

    /// The checksum type asked for with --checksum[=TYPE], or nil.
    var checksum: String? { request.type }

    func validate() throws {
        let request = self.request
        if let unknown = request.unknownOptions.first { throw ValidationError("Unknown option '\(unknown)'") }
        let lR = long && recursive
        if !lR && (csv || human || uids || times || timeT || timeRelative || timeDays || extraStats || request.type != nil) {
            throw ValidationError("used a flag which can only be combined with -lR mode")
        }
        if human && csv { throw ValidationError("you cannot use -h and --csv options together") }
        // guestfs_checksum's refusal of an unknown type (daemon/checksum.c).
        if let type = request.type, FileChecksum(type: type) == nil {
            throw ValidationError("unknown checksum type, expecting crc|md5|sha1|sha224|sha256|sha384|sha512")
        }
        if request.directories.isEmpty { throw ValidationError("Missing expected argument '<directory> ...'") }
    }

    /// How --times and its variants show a time (virt-ls `output_int64_time`).
    enum TimeStyle { case none, calendar, epoch, secondsAgo, daysAgo }

    var timeStyle: TimeStyle {
        if timeDays { return .daysAgo }
        if timeRelative { return .secondsAgo }
        if timeT { return .epoch }
        return times ? .calendar : .none
    }

    func run() throws {
        let session = try Session.open(image, filesystems)
        // Everything is open; what follows parses guest bytes (Sandbox.swift).
        try Sandbox.enter()
        let now = Int64(time(nil))
        var out = OutputBuffer()
        var failures = 0
        // As virt-ls: a directory that fails is reported and the next one still listed.
        for given in directories {
            do {
                // A Windows guest's paths may name a drive letter (Session+WindowsPaths.swift).
                let (tree, directory) = try session.guestPath(given)
                let lister = Lister(tree: tree, command: self, checksum: checksum, now: now)
                switch (long, recursive) {
                case (false, false): try lister.listing.names(directory, into: &out)
                case (true, false): try lister.listing.longListing(directory, into: &out)
                case (false, true): try lister.listing.find(directory, into: &out)
                case (true, true): try lister.records(directory, into: &out)
                }
            } catch {
                try out.flush()
                failures += 1
                Diagnostics.line("imagemount: \(Self.describe(error))\n")
            }
        }
        try out.flush()
        if failures > 0 { throw ExitCode.failure }
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? ImageError { return e.description }
        if let e = error as? CLIError { return e.message }
        return "\(error)"
    }
}

/// The listing work of `LsCommand`, over one mounted tree.
struct Lister {
    let tree: MountTree
    let command: LsCommand
    /// --checksum's type, or nil.
    let checksum: String?
    let now: Int64

    /// Guards the walks against directory cycles that a damaged filesystem could contain.
    static let maxDepth = GuestListing.maxDepth

    /// ls, ls -l and ls -R (GuestListing.swift), which the shell's ls, ll and find share.
    var listing: GuestListing { GuestListing(tree: tree, now: now) }

    func sortedEntries(_ dir: GuestNode) throws -> [(name: [UInt8], node: GuestNode)] {
        try listing.sortedEntries(dir)
    }

    /// virt-ls -lR: the directory's own record, then each entry's, descending into each
    /// subdirectory right after its record (guestfs-tools `visit`). A path that is not a
    /// directory gets its one record.
    func records(_ path: String, into out: inout OutputBuffer) throws {
        let top = try tree.resolve(path, followFinal: false)
        let pathBytes = Array(path.utf8)
        let topInode = try record(pathBytes, top, into: &out)
        if !topInode.isDirectory && !topInode.isSymlink { return }
        let dir = try tree.resolve(path)
        guard try tree.attributes(dir).isDirectory else { return }
        var ancestors = DirectoryWalkPath(top: dir)
        func walk(_ dir: GuestNode, _ dirPath: [UInt8], depth: Int) throws {
            guard depth < Self.maxDepth else {
                throw ImageError(structure: path, reason: "directories nested too deep (a loop in the filesystem?)", errno: .tooManySymbolicLinkLevels)
            }
            for child in try sortedEntries(dir) {
                let childPath = dirPath.last == 0x2F ? dirPath + child.name : dirPath + [0x2F] + child.name
                let inode = try record(childPath, child.node, into: &out)
                if inode.isDirectory {
                    guard ancestors.enter(child.node) else {
                        Diagnostics.warn(tree.loopWarning(path: String(decoding: childPath, as: UTF8.self), node: child.node))
                        continue
                    }
                    try walk(child.node, childPath, depth: depth + 1)
                    ancestors.leave(child.node)
                }
            }
        }
        try walk(dir, pathBytes, depth: 0)
    }

    /// One -lR record (virt-ls `show_file`). As there, only the type, the path and the link
    /// target are CSV-quoted; numbers and times are written as printf formats them.
    @discardableResult
    func record(_ path: [UInt8], _ node: GuestNode, into out: inout OutputBuffer) throws -> NodeAttributes {
        let i = try tree.attributes(node)
        var fields = RecordFields(csv: command.csv)
        // virt-ls writes "u" where ls writes "?" (a type it does not know).
        let type = LongListing.modeString(i.mode).prefix(1)
        fields.add(string: type == "?" ? "u" : String(type))
        fields.add(Self.octal4(UInt16(truncatingIfNeeded: i.permissions)))
        let size = command.human ? HumanSize.format(i.size) : String(i.size)
        fields.add(command.csv ? size : size.rightAligned(10))
        if command.uids {
            fields.add(String(i.uid).rightAligned(4))
            fields.add(String(i.gid).rightAligned(4))
        }
        if command.timeStyle != .none {
            for t in [i.atime, i.mtime, i.ctime] { fields.add(time(t)) }
        }
        if command.extraStats {
            let dev = Self.deviceNumber(tree.mounts[node.mount].deviceName)
            fields.add("\(dev.major):\(dev.minor)")
            fields.add(String(i.node))
            fields.add(String(i.links))
            let isDevice = i.type == .characterDevice || i.type == .blockDevice
            fields.add(isDevice ? "\(i.rdevMajor):\(i.rdevMinor)" : "0:0")
            fields.add(String(i.blocks512))
        }
        // virt-ls `show_file`: the checksum of a regular file; an empty CSV field for others.
        if let checksum {
            if i.isRegular {
                fields.add(string: try Self.checksum(checksum, of: tree.filesystem(of: node).openFile(node.inode)))
            } else if command.csv {
                fields.add(string: "")
            }
        }
        fields.add(string: path)
        if i.isSymlink {
            let target = try tree.filesystem(of: node).readlink(node.inode)
            if command.csv { fields.add(string: target) } else { fields.add(Array("-> ".utf8) + target) }
        }
        out.append(fields.line)
        try out.endLine()
        return i
    }

    static func checksum(_ type: String, of file: any GuestFile) throws -> String {
        guard var sum = FileChecksum(type: type) else { throw CLIError(message: "\(type): unknown checksum type") }
        try file.stream { sum.update($0) }
        return sum.finish()
    }

    func time(_ t: Timestamp) -> String {
        switch command.timeStyle {
        case .epoch: String(t.seconds).rightAligned(10)
        case .secondsAgo: String(now - t.seconds).rightAligned(8)
        case .daysAgo: String((now - t.seconds) / 86400).rightAligned(3)
        case .calendar, .none: LongListing.strftime("%F %T", t.seconds)
        }
    }

    /// `%04o`.
    static func octal4(_ value: UInt16) -> String {
        let digits = String(value, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The device number the guest's kernel would give the device, for --extra-stats' st_dev:
    /// SCSI disks are major 8, 16 minors per disk (disk N at 16·N, its partition P at 16·N + P).
    /// Partitions past 15 use the kernel's extended range, shown as 259:P.
    static func deviceNumber(_ name: String) -> (major: Int, minor: Int) {
        guard name.hasPrefix("/dev/sd") else { return (0, 0) }
        let rest = name.dropFirst("/dev/sd".count)
        let letters = rest.prefix { $0.isLetter }
        let partition = Int(rest.dropFirst(letters.count)) ?? 0
        var disk = 0
        for c in letters.unicodeScalars { disk = disk * 26 + Int(c.value - 96) }
        disk -= 1
        if partition > 15 { return (259, partition) }
        return (8, disk * 16 + partition)
    }
}

/// The fields of one -lR record, separated by spaces, or by commas with --csv.
struct RecordFields {
    let csv: Bool
    private(set) var line: [UInt8] = []
    private var count = 0

    init(csv: Bool) { self.csv = csv }

    /// A field written as it is (virt-ls `output_int64*`, and `-> target` in text mode).
    mutating func add(_ text: String) { add(Array(text.utf8)) }

    mutating func add(_ bytes: [UInt8]) {
        if count > 0 { line.append(csv ? 0x2C : 0x20) }
        count += 1
        line += bytes
    }

    /// A string field, CSV-quoted when needed (virt-ls `output_string`).
    mutating func add(string text: String) { add(string: Array(text.utf8)) }

    mutating func add(string bytes: [UInt8]) { add(csv ? CSV.field(bytes) : bytes) }
}

/// virt-ls' --checksum[=TYPE] and --checksums[=TYPE] (getopt `optional_argument`), picked out of
/// the inputs no declared option claimed: a value belongs to the option only when attached with
/// "="; without one the type is md5; the last one given wins.
struct ChecksumRequest {
    private(set) var type: String?
    private(set) var directories: [String] = []
    private(set) var unknownOptions: [String] = []

    init(_ inputs: [String]) {
        for input in inputs {
            let name = input.firstIndex(of: "=").map { String(input[..<$0]) } ?? input
            if name == "--checksum" || name == "--checksums" {
                let value = input.firstIndex(of: "=").map { String(input[input.index(after: $0)...]) } ?? ""
                type = value.isEmpty ? "md5" : value
            } else if input.hasPrefix("-") && input != "-" {
                unknownOptions.append(input)
            } else {
                directories.append(input)
            }
        }
    }
}

extension LsCommand: HandParsedOptions {
    /// --checksum[=TYPE] and --checksums[=TYPE] (ChecksumRequest), known to CommandLineCheck.
    static let handParsedOptions = ["--checksum", "--checksums"]
}
