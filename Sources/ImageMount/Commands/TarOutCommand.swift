import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount tar-out`: like virt-tar-out, a guest directory packed into a tar archive.
struct TarOutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tar-out",
        abstract: "Pack a directory of a disk image into a tar archive.",
        discussion: """
            Like virt-tar-out: DIR (an absolute guest path) is packed into TARFILE, or into \
            standard output when TARFILE is -, with members named ./ and ./PATH, as `tar -C DIR \
            -cf - .` names them. The archive is POSIX pax (what GNU tar --format=posix writes): \
            permissions, numeric owners, access and modification times to the nanosecond, \
            symbolic links (never followed), hard links, FIFOs and device nodes, and files with \
            holes as GNU sparse members (where the filesystem's extent map says the holes are). \
            --xattrs, --acls and --selinux add extended attributes, POSIX ACLs and SELinux \
            labels; -z or --compress compress it. Nothing is written to the image. \
            Example: imagemount tar-out -a vm.qcow2 /home - | gzip --best > homes.tar.gz
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions
    @OptionGroup var tar: TarFlags
    @OptionGroup var progressOptions: ProgressOptions

    @Option(name: [.customLong("exclude"), .customLong("excludes")],
            help: ArgumentHelp("Leave out members matching this wildcard, as GNU tar --exclude (unanchored; '*' matches '/' too). Repeatable.",
                               valueName: "pattern"))
    var excludes: [String] = []

    @Flag(name: .customLong("numeric-owner"), help: "Owners as numbers only: always so (a guest's user names mean nothing on the host); accepted for guestfish's numericowner.")
    var numericOwner = false

    @Argument(help: ArgumentHelp("The guest directory to pack (an absolute path).", valueName: "dir"))
    var directory: String

    @Argument(help: ArgumentHelp("The tar file to write, or - for standard output.", valueName: "tarfile"))
    var tarfile: String

    func validate() throws {
        guard directory.hasPrefix("/") else { throw ValidationError("\(directory): the guest directory must be an absolute path") }
    }

    func run() throws {
        let compression = try tar.compression() ?? .none
        let session = try Session.open(image, filesystems)
        let toStdout = tarfile == "-"
        let fd: Int32 = toStdout ? 1 : open(tarfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw CLIError(message: "\(tarfile): \(String(cString: strerror(errno)))") }
        defer { if !toStdout { close(fd) } }
        TarLocale.useUTF8()
        try TarLibrary.load()
        // Everything is open; what follows parses guest bytes and writes only to `fd` (Sandbox.swift).
        try Sandbox.enter()
        let progress = progressOptions.reporter()
        let top = try session.tree.resolve(directory)
        if progress.enabled { progress.setTotal(GuestTreeSize.bytes(below: top, in: session.tree)) }
        let writer = try TarArchiveWriter(fd: fd, compression: compression, display: toStdout ? "standard output" : tarfile)
        let packer = TarOut(tree: session.tree, writer: writer,
                            options: TarOut.Options(xattrs: tar.xattrs, acls: tar.acls, selinux: image.selinux, excludes: excludes),
                            progress: progress)
        try packer.run(top, display: directory)
        try writer.close()
        progress.finish()
        if packer.skipped > 0 {
            throw CLIError(message: "\(packer.skipped) damaged guest entr\(packer.skipped == 1 ? "y was" : "ies were") not archived (see the warnings above); everything else was")
        }
    }
}
