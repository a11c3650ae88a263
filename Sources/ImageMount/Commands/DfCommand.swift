import ArgumentParser
import GuestFS

struct DfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "df", abstract: "(being written)")
    @OptionGroup var image: ImageOptions
    func run() throws { throw CLIError(message: "df: not written yet") }
}
