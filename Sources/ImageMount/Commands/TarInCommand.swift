import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount tar-in`: like virt-tar-in, a tar archive unpacked into a guest directory.
struct TarInCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tar-in",
        abstract: "Unpack a tar archive into a directory of a disk image.",
        discussion: """
            Like virt-tar-in: TARFILE (or standard input when it is -) is unpacked into the \
            guest directory DIR, as root's `tar -C DIR -xf -` would: modes, numeric owners, \
            modification times to the nanosecond, symbolic links, hard links, FIFOs and device \
            nodes; GNU sparse members become sparse files. --xattrs, --acls and --selinux \
            restore extended attributes, POSIX ACLs and SELinux labels. Compression (gzip, \
            bzip2, xz, compress, zstd) is detected, or named with -z or --compress. The archive \
            is untrusted: a leading / is removed from member names, a member whose name has a \
            .. component or whose path goes through a symbolic link or any other non-directory \
            is refused with one line naming it, and nothing lands outside DIR; the other members \
            are extracted and the exit status is 1. However the command ends, the filesystem is \
            closed clean for its fsck. \
            Example: imagemount tar-in -a vm.img uploadstuff.tar.gz /tmp
            """
    )

    @OptionGroup var image: ImageOptions
    @OptionGroup var filesystems: FilesystemOptions
    @OptionGroup var overlay: OverlayOptions
    @OptionGroup var tar: TarFlags
    @OptionGroup var progressOptions: ProgressOptions

    @Argument(help: ArgumentHelp("The tar file to unpack, or - for standard input.", valueName: "tarfile"))
    var tarfile: String

    @Argument(help: ArgumentHelp("The guest directory to unpack it into (an absolute path).", valueName: "dir"))
    var directory: String

    func validate() throws {
        guard directory.hasPrefix("/") else { throw ValidationError("\(directory): the guest directory must be an absolute path") }
        if filesystems.readOnly { throw ValidationError("tar-in writes to the image; --ro cannot be used") }
    }

    func run() throws {
        let compression = try tar.compression()
        let fromStdin = tarfile == "-"
        let fd: Int32 = fromStdin ? 0 : open(tarfile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError(message: "\(tarfile): \(String(cString: strerror(errno)))") }
        defer { if !fromStdin { close(fd) } }
        let session = try Session.open(image, filesystems, writable: true, overlays: overlay.overlays)
        var failure: (any Error)?
        do {
            TarLocale.useUTF8()
            try TarLibrary.load()
            let names = tar.acls ? TarNameMap.loadHost() : TarNameMap()
            // Everything is open; from here on no host file is opened (Sandbox.swift).
            try Sandbox.enter()
            try unpack(fd, compression, session.tree, names)
        } catch {
            failure = error
        }
        // Closed on every path: bitmaps, counts and the superblock are written, fsck-clean.
        for mount in session.tree.mounts {
            do { try mount.filesystem.close() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    private func unpack(_ fd: Int32, _ compression: TarCompression?, _ tree: MountTree, _ names: TarNameMap) throws {
        let top = try tree.resolve(directory)
        guard try tree.attributes(top).isDirectory else { throw CLIError(message: "\(directory): not a directory in the guest") }
        if tree.isReadOnly(top) { throw CLIError(message: "\(directory): on \(tree.mounts[top.mount].deviceName), mounted read-only (-m ...:ro)") }
        let progress = progressOptions.reporter()
        if progress.enabled {
            var st = stat()
            if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG { progress.setTotal(UInt64(st.st_size)) }
        }
        let reader = try TarArchiveReader(fd: fd, compression: compression, display: tarfile == "-" ? "standard input" : tarfile)
        let unpacker = TarIn(tree: tree, top: top, options: TarIn.Options(xattrs: tar.xattrs, acls: tar.acls, selinux: image.selinux),
                             names: names, progress: progress)
        try unpacker.run(reader)
        progress.finish()
        if unpacker.skipped > 0 {
            throw CLIError(message: "\(unpacker.skipped) member\(unpacker.skipped == 1 ? " was" : "s were") not extracted (see above); the others were")
        }
    }
}
