import ArgumentParser
import GuestFS

struct FilesystemsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "filesystems", abstract: "(being written)")
    @OptionGroup var image: ImageOptions
    func run() throws { throw CLIError(message: "filesystems: not written yet") }
}
