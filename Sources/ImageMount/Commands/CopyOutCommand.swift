import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount copy-out`: like virt-copy-out, guest files and directories to a host directory.
struct CopyOutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-out",
        abstract: "Copy files and directories out of a disk image.",
        discussion: """
            Like virt-copy-out: each PATH (a file or a directory, copied recursively) lands in \
            HOSTDIR under its own name. Contents, permissions, access and modification times \
            (to the nanosecond), symbolic links (never followed), hard links, sparse holes, FIFOs \
            and extended attributes are kept; owners and device nodes too when run as root. \
            On a Windows guest found by inspection (no -m), paths may also be Windows paths, as virt-cat takes them: C:\\Windows\\win.ini or c:/windows/WIN.INI, names matched ignoring case, the drive letter looked up in the guest's drive mappings. \
            Example: imagemount copy-out -a vm.qcow2 /var/log ./logs
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions
    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("Guest paths to copy, then the host directory to copy them into.",
                                 valueName: "path... hostdir"))
    var arguments: [String]

    func validate() throws {
        if arguments.count < 2 { throw ValidationError("give at least one guest path and a host directory") }
    }

    func run() throws {
        guard let hostDirectory = arguments.last else { return }
        let destination = try HostDirectory.open(existing: hostDirectory)
        let session = try Session.open(image, filesystems)
        // Everything is open; new files may appear only beneath the destination (Sandbox.swift).
        try Sandbox.enter(writableBeneath: [destination.fd.rawValue])
        let progress = progressOptions.reporter()
        // One copier per tree: a Windows path may name another drive letter's volume.
        var batches: [(tree: MountTree, items: [(node: GuestNode, target: CopyOut.Target)])] = []
        for given in arguments.dropLast() {
            let (tree, path) = try session.guestPath(given)
            // The path itself is not followed if it is a symlink, as virt-copy-out copies the link.
            let node = try tree.resolve(path, followFinal: false)
            guard let name = HostDirectory.Name(MountTreeName.lastComponent(of: path)) else {
                throw CLIError(message: "\(path): cannot be copied under that name (give the directory itself, not '.' or '..')")
            }
            if destination.existingType(name) != nil {
                throw CLIError(message: "\(destination.display(name)): already exists on the host")
            }
            let item = (node: node, target: CopyOut.Target(parent: destination, name: name))
            if let last = batches.indices.last, batches[last].tree === tree {
                batches[last].items.append(item)
            } else {
                batches.append((tree, [item]))
            }
        }
        if progress.enabled {
            progress.setTotal(batches.reduce(0) { total, batch in
                batch.items.reduce(total) { $0 &+ GuestTreeSize.bytes(below: $1.node, in: batch.tree) }
            })
        }
        var skipped = 0
        for batch in batches {
            let copier = CopyOut(tree: batch.tree, progress: progress)
            try copier.run(batch.items)
            skipped += copier.skipped
        }
        progress.finish()
        if skipped > 0 {
            throw CLIError(message: "\(skipped) damaged guest entr\(skipped == 1 ? "y was" : "ies were") not copied (see the warnings above); everything else was")
        }
    }
}

enum MountTreeName {
    /// The name a guest path is copied under: its last component, or the whole device root as "/" → contents.
    static func lastComponent(of path: String) -> [UInt8] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return Array((parts.last.map(String.init) ?? "root").utf8)
    }
}
