import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount df`: like virt-df, the space (or inodes) used on each filesystem of the images.
///
/// Layout follows guestfs-tools `df/output.c` (`print_title`, `print_stat`) and the display
/// name `df/main.c` (`make_display_name`); the figures are the kernel's statfs ones
/// (each driver's `usage()`), which is what virt-df gets from its appliance.
struct DfCommand: ExaminesAllDomains {
    static let configuration = CommandConfiguration(
        commandName: "df",
        abstract: "Show free and used space on the filesystems in disk images.",
        discussion: """
            Like virt-df: one line per filesystem imagemount can open (ext2/3/4, XFS, vfat, iso9660, NTFS), named IMAGE:DEVICE where IMAGE is the \
            file name of the first -a image (with a "+" for each further image). Sizes are in \
            1024-byte blocks, or rounded with -h; Use% is rounded up as df does. The figures are \
            those the Linux kernel's statfs gives for the mounted filesystem: for ext the size leaves \
            out the filesystem's own metadata, and Available leaves out the blocks reserved for root. \
            Filesystems of other types are skipped with a warning. All the -a and -d drives are \
            taken as one guest, as virt-df takes them. With no -a and no -d, every libvirt \
            domain is examined (virsh list --all, or the domain files in /etc/libvirt/qemu \
            without virsh), in name order, rows named DOMAIN:DEVICE (the domain's UUID with \
            --uuid); -P of them at a time, each in a process of its own with its own sandbox, so \
            a domain whose disks fail is reported and the others go on (exit status 1). \
            Example: imagemount df -a vm.qcow2 -h
            """,
        helpNames: [.long]
    )

    @OptionGroup var image: ImageOptions

    @Flag(name: [.customShort("h"), .customLong("human-readable")], help: "Show sizes rounded with a K, M, G... suffix instead of in 1K blocks.")
    var human = false

    @Flag(name: [.customShort("i"), .customLong("inodes")], help: "Show inodes (total, used, free) instead of blocks.")
    var inodes = false

    @Flag(name: .customLong("csv"), help: "Write comma-separated values, with the image name and the device in separate columns and Use% to one decimal.")
    var csv = false

    @Flag(name: .customLong("uuid"), help: "Show each domain's UUID instead of its name when every libvirt domain is examined (no -a or -d). Disk images given with -a carry no libvirt UUID, so their name is shown.")
    var uuid = false

    @Flag(name: .customLong("one-per-guest"),
          help: "Accepted for virt-df compatibility and does nothing: as with virt-df since libguestfs 1.22, the drives given are one guest.")
    var onePerGuest = false

    @Option(name: .customShort("P", allowingJoined: true),
            help: ArgumentHelp("How many libvirt domains to examine at once when all of them are (no -a or -d); 0 or none: one per online CPU. The drives given with -a or -d are one guest, examined in one pass.", valueName: "nr_threads"))
    var threads: String?

    func validate() throws {
        if human && csv { throw ValidationError("you cannot use -h and --csv options together") }
        // virt-df reads -P with sscanf("%zu"): a number, or "-P option is not numeric".
        if let threads, UInt(threads) == nil { throw ValidationError("-P option is not numeric") }
    }

    func run() throws {
        // virt-df with no -a and no -d examines every libvirt domain.
        if image.images.isEmpty && image.domains.isEmpty { return try runAllDomains() }
        let guest = try Session.openGuest(image)
        // Everything is open; what follows parses guest bytes (Sandbox.swift).
        try Sandbox.enter()
        // virt-df names rows after the domain with -d, after the image(s) with -a, and adds a
        // "+" for each further -a or -d (main.c `make_display_name`): all of them are one guest.
        let name = try image.domains.first.map { $0 + String(repeating: "+", count: image.domains.count + image.images.count - 1) }
            ?? Self.displayName(image.drives().map(\.path))
        try StandardOutput.write(title() + report(guest, name: name))
    }

    /// One row per filesystem of `guest` that imagemount can open, named `name:DEVICE`.
    func report(_ guest: Guest, name: String) throws -> String {
        var out = ""
        for (device, type) in FilesystemsCommand.filesystems(of: guest) where type != "swap" && type != "unknown" {
            guard FilesystemRegistry.canOpen(device.content) else {
                Diagnostics.warn("\(device.name): \(type) filesystem skipped (imagemount cannot open \(type) yet)")
                continue
            }
            // As virt-df: a filesystem that cannot be opened is reported and skipped, not fatal.
            let fs: any GuestFilesystem
            do {
                fs = try FilesystemRegistry.open(device, writable: false)
            } catch {
                Diagnostics.warn("\(device.name): skipped: \(LsCommand.describe(error))")
                continue
            }
            defer { try? fs.close() }
            for warning in fs.warnings { Diagnostics.warn(warning) }
            out += line(name: name, device: device.name, usage: try fs.usage())
        }
        return out
    }

    /// Every libvirt domain (`ImageOptions.allDomainNames`), in name order, `-P` at a time, each
    /// in a process of its own that opens its disks, enters its own sandbox and reports
    /// (ForkedWorkers.swift). A domain that fails is reported on stderr and the others go on;
    /// the exit status is then 1.
    func runAllDomains() throws {
        let names = try ImageOptions.allDomainNames(connect: image.connect)
        // As virt-df: no domains, no output (not even the title).
        guard !names.isEmpty else { return }
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let requested = threads.flatMap { UInt($0) }.map { Int(clamping: $0) } ?? 0
        let parallel = requested > 0 ? requested : max(1, online)
        try StandardOutput.write(title())
        let base = image
        let outcomes = ForkedWorkers.run(count: names.count, parallel: parallel, job: { index in
            var one = base
            one.domains = [names[index]]
            let label = try uuid ? ImageOptions.loadDomain(names[index], connect: base.connect).uuid ?? names[index] : names[index]
            let guest = try Session.openGuest(one)
            try Sandbox.enter()
            return Array(try report(guest, name: label).utf8)
        }, report: { index, error in
            Diagnostics.line("imagemount: \(names[index]): \(LsCommand.describe(error))\n")
        })
        for outcome in outcomes where !outcome.output.isEmpty {
            try outcome.output.withUnsafeBytes { try StandardOutput.write($0) }
        }
        if outcomes.contains(where: \.failed) { throw ExitCode(1) }
    }

    /// virt-df's name for a single guest given as disks: the base name of the first image, plus
    /// one "+" for each further image.
    static func displayName(_ paths: [String]) -> String {
        guard let first = paths.first else { return "" }
        // A network drive (-a nbd://HOST/EXPORT, -a rbd:POOL/IMAGE) has no file name: its URI names it.
        if first.contains("://") || first.hasPrefix("rbd:") { return first + String(repeating: "+", count: paths.count - 1) }
        let base = first.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? first
        return base + String(repeating: "+", count: paths.count - 1)
    }

    func title() -> String {
        let columns = inodes ? ["Inodes", "IUsed", "IFree", "IUse%"]
                             : [human ? "Size" : "1K-blocks", "Used", "Available", "Use%"]
        if csv { return CSV.line(["VirtualMachine", "Filesystem"] + columns) }
        return "Filesystem".leftAligned(36) + Self.row(columns)
    }

    func line(name: String, device: String, usage u: FilesystemUsage) -> String {
        var cells: [String]
        let percent: Float
        if inodes {
            cells = [String(u.totalInodes), String(u.totalInodes &- u.freeInodes), String(u.freeInodes)]
            percent = u.totalInodes == 0 ? 0 : Float(100.0 - 100.0 * Double(u.freeInodes) / Double(u.totalInodes))
        } else {
            let used = u.totalBlocks &- u.freeBlocks
            if human {
                cells = [u.totalBlocks, used, u.availableBlocks].map { HumanSize.format($0 &* u.blockSize) }
            } else {
                cells = [u.totalBlocks, used, u.availableBlocks].map { String(Self.kibibytes($0, blockSize: u.blockSize)) }
            }
            percent = u.totalBlocks == 0 ? 0 : Float(100.0 - 100.0 * Double(u.freeBlocks) / Double(u.totalBlocks))
        }
        // virt-df keeps the percentage in a float; text rounds it up as df does, CSV gives one decimal.
        if csv {
            cells.append(Self.oneDecimal(Double(percent)))
            return CSV.line([name, device] + cells)
        }
        cells.append(Self.formatInteger(Double(percent).rounded(.up)) + "%")
        let label = name + ":" + device
        let lead = label.utf8.count <= 36 ? label.leftAligned(36) : label + "\n" + String(repeating: " ", count: 36)
        return lead + Self.row(cells)
    }

    /// `%10s %10s %10s %5s\n`.
    static func row(_ cells: [String]) -> String {
        cells[0].rightAligned(10) + " " + cells[1].rightAligned(10) + " " + cells[2].rightAligned(10) + " "
            + cells[3].rightAligned(5) + "\n"
    }

    /// Blocks of `blockSize` bytes as 1024-byte blocks (virt-df `scale`).
    static func kibibytes(_ blocks: UInt64, blockSize: UInt64) -> UInt64 {
        blockSize >= 1024 ? blocks &* (blockSize / 1024) : blocks / (1024 / max(blockSize, 1))
    }



    /// `%3.0f` of a whole number (`ceil` already applied); `-0` as printf writes it.
    static func formatInteger(_ value: Double) -> String {
        let text = value == 0 && value.sign == .minus ? "-0" : String(Int64(value))
        return text.rightAligned(3)
    }

    /// `%.1f`, through the C library so the rounding is printf's.
    static func oneDecimal(_ value: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.1f", $0) }
        return String(decoding: buffer.prefix(max(0, Int(length))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
