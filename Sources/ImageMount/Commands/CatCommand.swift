import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// `imagemount cat`: like virt-cat, files from the guest to stdout, byte for byte.
struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat",
        abstract: "Print files from a disk image to standard output.",
        discussion: """
            Like virt-cat: each PATH is an absolute path in the guest; symbolic links are followed \
            inside the guest, never on the host. Several paths are printed one after another; \
            as virt-cat, a path that cannot be printed (a relative path: "path must start with a / \
            character", a missing file, a directory) is reported on stderr, the remaining paths \
            are still printed, and the exit status is 1. \
            On a Windows guest found by inspection (no -m), paths may also be Windows paths, as virt-cat takes them: C:\\Windows\\win.ini or c:/windows/WIN.INI, names matched ignoring case, the drive letter looked up in the guest's drive mappings. \
            Example: imagemount cat -a vm.qcow2 /etc/hostname
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions

    @Argument(help: ArgumentHelp("Files to print, as absolute paths in the guest.", valueName: "path"))
    var paths: [String]

    func run() throws {
        let session = try Session.open(image, filesystems)
        // Everything is open; what follows parses guest bytes (Sandbox.swift).
        try Sandbox.enter()
        // As virt-cat (`do_cat`): each failed path is counted and the next one still printed.
        var failures = 0
        for path in paths {
            do {
                // A Windows guest's paths may be `C:\...` (Session+WindowsPaths.swift).
                let (tree, guestPath) = try session.guestPath(path)
                try printFile(guestPath, tree)
            } catch {
                failures += 1
                Diagnostics.line("imagemount: \(LsCommand.describe(error))\n")
            }
        }
        if failures > 0 { throw ExitCode.failure }
    }

    private func printFile(_ path: String, _ tree: MountTree) throws {
        // libguestfs' daemon refuses relative paths for download (`ABS_PATH` in daemon.h);
        // virt-cat reports "download: download_stub: path must start with a / character".
        guard path.hasPrefix("/") else { throw CLIError(message: "\(path): path must start with a / character") }
        let node = try tree.resolve(path)
        let attributes = try tree.attributes(node)
        guard attributes.isRegular else {
            throw CLIError(message: "\(path): \(attributes.isDirectory ? "is a directory" : "is not a regular file")")
        }
        try tree.filesystem(of: node).openFile(node.inode).stream(to: StandardOutput.write)
    }
}
