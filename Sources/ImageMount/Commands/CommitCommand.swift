import ArgumentParser
import GuestFSBlock
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount commit`: an overlay's writes into its backing file, as `qemu-img commit`.
struct CommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Write the changes held in a qcow2 overlay back into its backing file.",
        discussion: """
            Like qemu-img commit: every range the overlay allocates (data and zero clusters) \
            is written into the backing file it names, which is opened for writing with \
            QEMU's write lock; then the backing file is flushed, and only then the overlay is \
            emptied (replaced, by an atomic rename, with an empty overlay naming the same \
            backing file), unless -d keeps it. A crash at any point leaves overlay over \
            backing reading as before, or the backing file holding everything: run commit \
            again. Prints "Image committed." as qemu-img does, unless -q. \
            Example: imagemount copy-in -a vm.img --overlay try.qcow2 ./fix /etc && imagemount commit try.qcow2
            """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .customShort("d"), help: "Keep the overlay's contents after committing (qemu-img commit -d); by default it is emptied.")
    var keepOverlay = false

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Print nothing on success.")
    var quiet = false

    @Argument(help: ArgumentHelp("The qcow2 overlay to commit.", valueName: "overlay"))
    var overlay: String

    func run() throws {
        global.apply()
        // Emptying the overlay makes and renames a file beside it: only that folder is open
        // for it in the sandbox (opened here, before).
        let folder = Qcow2Overlay.folder(of: overlay)
        let fd = open(folder, hostio_o_path | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError(message: "\(folder): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let rules = keepOverlay ? [] : [Sandbox.Rule(fd: fd, access: Sandbox.writeFile | Sandbox.removeFile | Sandbox.makeRegular
                                                        | Sandbox.truncate | Sandbox.readDirectory)]
        let result = try Qcow2Overlay.commit(overlay: overlay, keepOverlay: keepOverlay) { try Sandbox.enter(rules: rules) }
        Diagnostics.trace("commit \(overlay) into \(result.backingPath): \(result.dataBytes) bytes of data, \(result.zeroBytes) of zeros")
        if !quiet { try StandardOutput.write("Image committed.\n") }
    }
}
