import ArgumentParser
import GuestFS

struct CopyOutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "copy-out", abstract: "(being written)")
    @OptionGroup var image: ImageOptions
    func run() throws { throw CLIError(message: "copy-out: not written yet") }
}
