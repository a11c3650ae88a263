import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// `imagemount info`: what `qemu-img info` shows about image files.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show the format, size, features, snapshots and backing chain of disk images.",
        discussion: """
            Prints, for each -a image, the fields qemu-img info shows, in the same shape so the \
            two can be compared: format, virtual size, disk size, cluster size, compat level, \
            compression type, encryption, feature bits (lazy refcounts, extended L2, corrupt), \
            internal snapshots and backing file. With --backing-chain every image of the chain \
            is shown, the overlay first; --json prints what qemu-img info --output=json prints. \
            Example: imagemount info -a vm.qcow2 --backing-chain
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var rbd: RBDOptions

    @Option(name: [.customShort("a"), .customLong("add")],
            help: ArgumentHelp("An image to describe: a file, an NBD URI (nbd://…, nbd+unix://…) or an RBD image (rbd:POOL/IMAGE). Repeat for several.", valueName: "image"))
    var images: [String] = []

    @Option(name: .customLong("format"),
            help: ArgumentHelp("Read the images as this format (raw, qcow2, vpc, vdi, vhdx, vmdk, qcow, qed or parallels) instead of probing.", valueName: "raw|qcow2|vpc|vdi|vhdx|vmdk|qcow|qed|parallels"))
    var format: String?

    @Flag(name: .customLong("backing-chain"), help: "Also describe every backing file, down to the base image.")
    var backingChain = false

    @Flag(name: .customLong("json"), help: "Print JSON, as qemu-img info --output=json does (the same as --output=json).")
    var jsonFlag = false

    @Option(name: .customLong("output"),
            help: ArgumentHelp("Output format, as qemu-img info's option: human (the default) or json.", valueName: "human|json"))
    var output: QemuImgOutput?

    var json: Bool { (try? QemuImgOutput.resolve(output: output, json: jsonFlag)) == .json }

    func validate() throws {
        if images.isEmpty { throw ValidationError("no image given: add one with -a IMAGE") }
        _ = try QemuImgOutput.resolve(output: output, json: jsonFlag)
        if let format, ImageFormat(rawValue: format) == nil { throw ValidationError("unknown --format '\(format)': use \(ImageFormat.allCases.map(\.rawValue).joined(separator: ", "))") }
    }

    func run() throws {
        let forced = format.flatMap(ImageFormat.init(rawValue:))
        // Open first, then parse inside the sandbox (Sandbox.swift). With --backing-chain the
        // chain is walked, headers parsed and backing files opened, before it, as every command
        // opens its chains; without it only the files are opened first. A file that fails
        // keeps its place: the images before it are printed, then its error ends the command.
        let prepared: [Result<[ImageInfo], any Error>]
        if backingChain {
            let client = rbd.client
            prepared = images.map { path in Result { try ImageInfo.gather(path: path, format: forced, backingChain: true, rbdClient: client) } }
            try Sandbox.enter()
        } else {
            let client = rbd.client
            let files = images.map { path in
                Result<any ImageSource, any Error> {
                    if RBDImageName.isRBD(path) { return try RBDSource(name: path, client: client, writable: false) }
                    if NBDURI.isNBD(path) { return try NBDSource(uri: path, writable: false) }
                    return try RawImage(path: path, writable: false)
                }
            }
            try Sandbox.enter()
            prepared = files.map { file in
                Result {
                    let source = try file.get()
                    if let raw = source as? RawImage { return [try ImageInfo.describe(raw, format: forced)] }
                    return [try ImageInfo.describe(source: source, format: forced)]
                }
            }
        }
        for (index, result) in prepared.enumerated() {
            let infos = try result.get()
            if index > 0 && !json { try StandardOutput.write("\n") }
            try StandardOutput.write(json ? ImageInfo.json(infos, chain: backingChain) : ImageInfo.text(infos))
        }
    }
}
