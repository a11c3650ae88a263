import ArgumentParser
import GuestFS
#if canImport(Glibc)
import Glibc
#endif

/// The `imagemount` command: guestmount and the virt-* tools in one binary.
struct ImageMount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imagemount",
        abstract: "Work with the files inside raw and qcow2 virtual-machine disk images, without booting them.",
        discussion: """
            imagemount opens disk images on the host, finds their partitions and ext2/3/4 \
            filesystems, and reads them directly, in milliseconds. Options are spelled as in \
            guestmount and the virt-* tools: -a IMAGE adds a drive (the first is /dev/sda, its \
            partitions /dev/sda1...), --format=raw|qcow2 applies to the -a options after it, and \
            -m DEVICE[:MOUNTPOINT] chooses filesystems. When the image holds exactly one \
            filesystem, -m may be left out.
            """,
        version: ImageMountVersion.string,
        subcommands: [
            MountCommand.self, UnmountCommand.self,
            CatCommand.self, LsCommand.self, CopyOutCommand.self, CopyInCommand.self, EditCommand.self, DfCommand.self, FilesystemsCommand.self,
            InspectCommand.self, InfoCommand.self, CheckCommand.self,
        ],
        defaultSubcommand: MountCommand.self
    )
}

enum ImageMountVersion {
    static let string = "0.1.0"
}

/// Entry point: parse, run, and turn every failure into one line on stderr and a non-zero exit.
@main
enum Main {
    static func main() {
        do {
            var command = try ImageMount.parseAsRoot()
            try command.run()
        } catch let error as ImageError {
            Diagnostics.fail(error.description, code: 1)
        } catch let error as CLIError {
            Diagnostics.fail(error.message, code: error.exitCode)
        } catch let code as ExitCode {
            // The command already said what went wrong; only the status is left to give.
            exit(code.rawValue)
        } catch {
            // --help and --version arrive as "errors" with a success code: let ArgumentParser print them.
            // Usage mistakes become one line, like every other failure.
            let code = ImageMount.exitCode(for: error)
            if code == .success { ImageMount.exit(withError: error) }
            let message = ImageMount.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            Diagnostics.fail(message + " (see imagemount --help)", code: code.rawValue)
        }
    }
}
