import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage

/// `imagemount check`: our own consistency check of images (qcow2, vdi, qed, parallels, vmdk,
/// vhdx), reported like `qemu-img check`.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the metadata of disk images for leaks and corruption, as qemu-img check does.",
        discussion: """
            Counts the references to every cluster of each -a image (from the header, the L1 and \
            L2 tables of the active state and of every internal snapshot, the snapshot table and \
            the refcount structures) and compares them with the stored refcounts, as qemu-img \
            check does. Leaked clusters (a refcount but no reference) waste space; errors \
            (refcounts below the references, tables or data pointing outside the file, wrong \
            COPIED flags) mean further writes could damage data. Nothing is written. The exit \
            status is qemu-img check's: 0 clean, 2 errors, 3 leaks only, 1 when the check itself \
            failed. Raw images have nothing to check. Encrypted images are checked without \
            their key (the LUKS header's clusters count as referenced), as qemu-img check does. \
            vdi, qed, parallels, vmdk and vhdx images get the checks of QEMU's drivers for them \
            (block maps, grain tables, BAT entries inside the file and clear of the metadata); \
            like qemu-img check, a vmdk grain past the end of its file and a vhdx whose log \
            needs replaying end the check with status 1 and no verdict. \
            Example: imagemount check -a vm.qcow2 --json
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var rbd: RBDOptions

    @Option(name: [.customShort("a"), .customLong("add")],
            help: ArgumentHelp("An image to check (qcow2, vdi, qed, parallels, vmdk, vhdx): a file, an NBD URI (nbd://…, nbd+unix://…) or an RBD image (rbd:POOL/IMAGE). Repeat for several.", valueName: "image"))
    var images: [String] = []

    @Option(name: .customLong("format"),
            help: ArgumentHelp("Check the images as this format (qcow2, vdi, qed, parallels, vmdk, vhdx, or raw, vpc and qcow, which have no check) instead of probing, as qemu-img check -f.", valueName: "format"))
    var format: String?

    @Flag(name: .customLong("json"), help: "Print JSON, as qemu-img check --output=json does (the same as --output=json).")
    var jsonFlag = false

    @Option(name: .customLong("output"),
            help: ArgumentHelp("Output format, as qemu-img check's option: human (the default) or json.", valueName: "human|json"))
    var output: QemuImgOutput?

    var json: Bool { (try? QemuImgOutput.resolve(output: output, json: jsonFlag)) == .json }

    func validate() throws {
        if images.isEmpty { throw ValidationError("no image given: add one with -a IMAGE") }
        if let format, ImageFormat(rawValue: format) == nil {
            throw ValidationError("unknown --format '\(format)': use \(ImageFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        _ = try QemuImgOutput.resolve(output: output, json: jsonFlag)
    }

    func run() throws {
        var status: Int32 = 0
        var printed = false
        // Metadata only: an encrypted image is checked without its key, as qemu-img check does.
        var options = ImageOpenOptions()
        options.metadataOnly = true
        // A given format vouches for the files the image names (extents, backing files), as for -a of the other commands.
        options.format = format.flatMap(ImageFormat.init(rawValue:))
        options.rbdClient = rbd.client
        // Every image (and its chain) is opened first, then the tables are walked inside the
        // sandbox (Sandbox.swift); an image that failed to open fails at its turn.
        let devices = images.map { path in Result { try ImageOpener.open(path: path, options: options) } }
        try Sandbox.enter()
        for (index, path) in images.enumerated() {
            let device = try devices[index].get()
            guard let (format, result) = try ImageFormatRegistry.check(device) else {
                try StandardOutput.write("\(path): raw images have no metadata to check (nor do vpc and qcow)\n")
                printed = true
                continue
            }
            for line in result.messages { _ = try? FileDescriptor.standardError.writeAll((line + "\n").utf8) }
            if result.messagesLeftOut > 0 {
                _ = try? FileDescriptor.standardError.writeAll("imagemount: \(path): \(result.messagesLeftOut) more messages left out (the first \(ImageCheckResult.maxMessages) are shown)\n".utf8)
            }
            if let failure = result.failure {
                // As qemu-img when the format's check fails: no verdict, one line, status 1.
                _ = try? FileDescriptor.standardError.writeAll("imagemount: \(path): \(failure)\n".utf8)
                status = status == 0 ? 1 : status
                continue
            }
            if printed && !json { try StandardOutput.write("\n") }
            printed = true
            try StandardOutput.write(json ? Self.json(result, path: path, format: format) : Self.text(result))
            let code = result.exitStatus
            if code != 0, status == 0 || code == 2 { status = code }
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// The text qemu-img check prints.
    static func text(_ r: ImageCheckResult) -> String {
        var out = ""
        if r.corruptions == 0 && r.leaks == 0 && r.checkErrors == 0 {
            out += "No errors were found on the image.\n"
        } else {
            if r.corruptions > 0 {
                out += "\n\(r.corruptions) errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n"
            }
            if r.leaks > 0 {
                out += "\n\(r.leaks) leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n"
            }
            if r.checkErrors > 0 { out += "\n\(r.checkErrors) internal errors have occurred during the check.\n" }
        }
        if r.totalClusters > 0 && r.allocatedClusters > 0 {
            // As qemu-img: %0.2f of a double (3.125 prints as 3.12).
            func pct(_ n: UInt64, _ d: UInt64) -> String {
                ImageInfo.cFormat("%0.2f", d == 0 ? 0 : Double(n) * 100 / Double(d)) + "%"
            }
            out += "\(r.allocatedClusters)/\(r.totalClusters) = \(pct(r.allocatedClusters, r.totalClusters)) allocated, "
                + "\(pct(r.fragmentedClusters, r.allocatedClusters)) fragmented, \(pct(r.compressedClusters, r.allocatedClusters)) compressed clusters\n"
        }
        if r.imageEndOffset > 0 { out += "Image end offset: \(r.imageEndOffset)\n" }
        return out
    }

    /// The JSON qemu-img check --output=json prints, fields in its order.
    static func json(_ r: ImageCheckResult, path: String, format: ImageFormat) -> String {
        var fields: [(String, String)] = []
        // A format whose check counts no clusters (vdi) leaves those keys out, as qemu-img does;
        // qemu-img prints each count only when it is not 0 (collect_image_check's has_* fields),
        // so qed, whose check has no image end, leaves that out. Keys in qemu-img's order (that
        // of its QDict's hash table): compressed-clusters right after image-end-offset,
        // fragmented-clusters after format.
        if r.countsClusters, r.imageEndOffset > 0 { fields.append(("image-end-offset", "\(r.imageEndOffset)")) }
        if r.compressedClusters > 0 { fields.append(("compressed-clusters", "\(r.compressedClusters)")) }
        if r.countsClusters, r.totalClusters > 0 { fields.append(("total-clusters", "\(r.totalClusters)")) }
        if r.corruptions > 0 { fields.append(("corruptions", "\(r.corruptions)")) }
        if r.leaks > 0 { fields.append(("leaks", "\(r.leaks)")) }
        fields.append(("check-errors", "\(r.checkErrors)"))
        if r.countsClusters, r.allocatedClusters > 0 { fields.append(("allocated-clusters", "\(r.allocatedClusters)")) }
        fields.append(("filename", ImageInfo.quote(path)))
        fields.append(("format", ImageInfo.quote(format.rawValue)))
        if r.fragmentedClusters > 0 { fields.append(("fragmented-clusters", "\(r.fragmentedClusters)")) }
        return "{\n" + fields.map { "    \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }
}
