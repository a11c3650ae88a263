import ArgumentParser
import GuestFS

/// `imagemount cat`: like virt-cat, files from the guest to stdout, byte for byte.
struct CatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cat",
        abstract: "Print files from a disk image to standard output.",
        discussion: """
            Like virt-cat: each PATH is an absolute path in the guest; symbolic links are followed \
            inside the guest, never on the host. Several paths are printed one after another. \
            Example: imagemount cat -a vm.qcow2 /etc/hostname
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions

    @Argument(help: ArgumentHelp("Files to print, as absolute paths in the guest.", valueName: "path"))
    var paths: [String]

    func run() throws {
        let session = try Session.open(image, filesystems)
        for path in paths {
            let node = try session.tree.resolve(path)
            let fs = session.tree.filesystem(of: node)
            let file = try fs.openFile(node.inode)
            guard file.inode.isRegular else {
                throw CLIError(message: "\(path): \(file.inode.isDirectory ? "is a directory" : "is not a regular file")")
            }
            try file.stream(to: StandardOutput.write)
        }
    }
}
