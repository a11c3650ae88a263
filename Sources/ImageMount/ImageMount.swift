import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// The `imagemount` command: guestmount and the virt-* tools in one binary.
struct ImageMount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imagemount",
        abstract: "Work with the files inside virtual-machine disk images (local files, NBD exports, Ceph RBD), without booting them.",
        discussion: """
            imagemount opens disk images on the host, finds their partitions and filesystems \
            (ext2/3/4, XFS, vfat, ISO 9660 and NTFS; the others are listed), and reads them directly, in \
            milliseconds. Options are spelled as in \
            guestmount and the virt-* tools: -a IMAGE adds a drive (the first is /dev/sda, its \
            partitions /dev/sda1...), --format=FORMAT (qemu-img's names: raw, qcow2, vmdk, vpc, vhdx, vdi, qcow, qed, parallels) applies to the -a options after it, and \
            -m DEVICE[:MOUNTPOINT[:OPTIONS[:FSTYPE]]] chooses filesystems. When the image holds \
            exactly one filesystem, -m may be left out. Every command also takes libguestfs's \
            -v, -x, -V/--version, --long-options and --short-options. A usage error prints \
            two lines (what is wrong, then "Try ‘imagemount --help’ for more information.") and \
            exits with status 1; an unknown option is reported before any other mistake.
            """,
        subcommands: [
            MountCommand.self, UnmountCommand.self,
            CatCommand.self, LsCommand.self, CopyOutCommand.self, CopyInCommand.self, TarOutCommand.self, TarInCommand.self, EditCommand.self, DfCommand.self, FilesystemsCommand.self,
            InspectCommand.self, InfoCommand.self, CheckCommand.self, CommitCommand.self, DiffCommand.self,
            ShellCommand.self,
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
        // edit's helper process (EditorAgent.swift) serves its parent and exits here.
        EditorAgent.runIfAgent()
        let arguments = CommandLineCheck.normalized(Array(CommandLine.arguments.dropFirst()))
        var parsed: ParsableCommand
        do {
            // The common helper command lines skip the reflection-based parse (FastCommandLine.swift).
            if let fast = FastCommandLine.parse(arguments) {
                parsed = fast
            } else if let fast = FastCommandLine.parseSubcommand(arguments) {
                parsed = fast
            } else {
                ImageOptions.drivesOptional = CommandLineCheck.command(for: arguments).type is any ExaminesAllDomains.Type
                parsed = try ImageMount.parseAsRoot(arguments)
                if arguments.contains(where: CommandLineCheck.mayPrintAndExit) { preflight(arguments) }
            }
        } catch {
            // --help (and --experimental-dump-help) arrive as "errors" with a success code.
            if ImageMount.exitCode(for: error) == .success { ImageMount.exit(withError: error) }
            // Options that print and exit, and unknown options, come first, as for getopt.
            preflight(arguments)
            let message = ImageMount.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            CommandLineCheck.usageError(CommandLineCheck.getoptWording(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message),
                                        command: CommandLineCheck.command(for: arguments).name)
        }
        do {
            try parsed.run()
        } catch let error as ImageError {
            Diagnostics.fail(error.description, code: 1)
        } catch let error as CLIError {
            Diagnostics.fail(error.message, code: error.exitCode)
        } catch let code as ExitCode {
            // The command already said what went wrong; only the status is left to give.
            exit(code.rawValue)
        } catch {
            let code = ImageMount.exitCode(for: error)
            if code == .success { ImageMount.exit(withError: error) }
            let message = ImageMount.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            Diagnostics.fail(message, code: code.rawValue)
        }
    }

    /// Scans the arguments for an option that prints and exits or an unknown one, and acts on
    /// the first met; returns when there is neither.
    static func preflight(_ arguments: [String]) {
        let (type, name, rest) = CommandLineCheck.command(for: arguments)
        let spellings = CommandLineCheck.spellings(of: type)
        if let finding = CommandLineCheck.scan(rest, spellings: spellings) {
            CommandLineCheck.act(on: finding, command: type, name: name, spellings: spellings)
        }
    }
}
