import ArgumentParser
import GuestFS

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "(being written)")
    @OptionGroup var image: ImageOptions
    func run() throws { throw CLIError(message: "ls: not written yet") }
}
