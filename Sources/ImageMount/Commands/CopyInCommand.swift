import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount copy-in`: like virt-copy-in, host files and directories into a guest directory.
struct CopyInCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-in",
        abstract: "Copy files and directories from the host into a disk image.",
        discussion: """
            Like virt-copy-in: each HOSTPATH (a file or a directory, copied recursively) lands in \
            the guest directory GUESTDIR under its own name; an existing guest directory is \
            merged into and an existing file is replaced. Contents, permissions, owners, access \
            and modification times (to the nanosecond), symbolic links (never followed), hard \
            links, sparse holes, device nodes, FIFOs and extended attributes (POSIX ACLs and \
            security labels included) are kept. The space needed is counted first: a copy that \
            cannot fit fails before anything is written. However the command ends, the \
            filesystem is closed clean for e2fsck. \
            On a Windows guest found by inspection (no -m), paths may also be Windows paths, as virt-cat takes them: C:\\Windows\\win.ini or c:/windows/WIN.INI, names matched ignoring case, the drive letter looked up in the guest's drive mappings. \
            Example: imagemount copy-in -a vm.img ./etc/motd ./srv /
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions
    @OptionGroup var overlay: OverlayOptions
    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("Host paths to copy, then the guest directory to copy them into.",
                                 valueName: "hostpath... guestdir"))
    var arguments: [String]

    func validate() throws {
        if arguments.count < 2 { throw ValidationError("give at least one host path and a guest directory") }
        if filesystems.readOnly { throw ValidationError("copy-in writes to the image; --ro cannot be used") }
    }

    func run() throws {
        guard let guestDirectory = arguments.last else { return }
        let sources = arguments.dropLast().map { HostPath($0) }
        for source in sources where source.existingType() == nil {
            throw CLIError(message: "\(source.display): no such file or directory on the host")
        }
        let session = try Session.open(image, filesystems, writable: true, overlays: overlay.overlays)
        var failure: (any Error)?
        do {
            // Everything is open; from here on only the sources may be read (Sandbox.swift).
            let rules = try Self.sourceRules(sources)
            defer { rules.forEach { close($0.fd) } }
            try Sandbox.enter(rules: rules)
            // A Windows guest's directory may be `C:\...` (Session+WindowsPaths.swift).
            let (tree, directory) = try session.guestPath(guestDirectory)
            try copy(sources, to: directory, tree)
        } catch {
            failure = error
        }
        // Closed on every path: bitmaps, counts and the superblock are written, e2fsck-clean.
        for mount in session.allMounts {
            do { try mount.filesystem.close() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// A read rule for each source that is a directory or a regular file (O_PATH descriptors,
    /// closed by the caller once the sandbox holds them). A symbolic link is copied as a link,
    /// never followed, and readlink is not something Landlock restricts.
    static func sourceRules(_ sources: [HostPath]) throws -> [Sandbox.Rule] {
        var rules: [Sandbox.Rule] = []
        for source in sources {
            guard let type = source.existingType(), type == S_IFDIR || type == S_IFREG else { continue }
            let fd = source.withCString { open($0, hostio_o_path | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else {
                rules.forEach { close($0.fd) }
                throw CLIError(message: "\(source.display): \(String(cString: strerror(errno)))")
            }
            rules.append(.readable(fd, directory: type == S_IFDIR))
        }
        return rules
    }

    private func copy(_ sources: [HostPath], to guestDirectory: String, _ tree: MountTree) throws {
        let dir = try tree.resolve(guestDirectory)
        if tree.isReadOnly(dir) { throw CLIError(message: "\(guestDirectory): on \(tree.mounts[dir.mount].deviceName), mounted read-only " + (tree.mounts[dir.mount].filesystem.isKeptReadOnly ? "(see the warning above)" : "(-m ...:ro)")) }
        let fs = try tree.writableFilesystem(of: dir)
        guard try fs.attributes(dir.inode).isDirectory else {
            throw CLIError(message: "\(guestDirectory): not a directory in the guest")
        }
        let need = try CopyIn.requirement(of: sources, blockSize: UInt64(fs.blockSize))
        let usage = try fs.usage()
        let reserve = max(64, min(fs.declaredSize / UInt64(max(fs.blockSize, 1)) / 256, 4096))
        // A filesystem without inode counts (vfat's statfs gives 0 files) is limited by space alone.
        let inodesShort = usage.totalInodes > 0 && need.inodes > usage.freeInodes
        if need.blocks + reserve > usage.freeBlocks || inodesShort {
            throw CLIError(message: "\(guestDirectory): not enough space in the guest filesystem " +
                           "(needs about \(need.blocks) blocks and \(need.inodes) inodes; " +
                           "\(usage.freeBlocks > reserve ? usage.freeBlocks - reserve : 0) blocks and \(usage.freeInodes) inodes free); nothing was copied")
        }
        let progress = progressOptions.reporter()
        progress.setTotal(need.bytes)
        let copier = CopyIn(filesystem: fs, progress: progress)
        for source in sources {
            let name = MountTreeName.lastComponent(of: source.display)
            try copier.copy(source, into: dir.inode, name: name)
        }
        progress.finish()
    }
}
