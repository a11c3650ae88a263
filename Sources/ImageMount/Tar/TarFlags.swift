import ArgumentParser

/// The options tar-in and tar-out share, after guestfish's `tar-in`/`tar-out` optional
/// arguments (`compress:`, `xattrs:`, `acls:`; `selinux:` is `--selinux`, which every
/// command accepts) and virt-tar's `-z`.
struct TarFlags: ParsableArguments {
    @Flag(name: [.customShort("z"), .customLong("gzip")], help: "The archive is gzip-compressed (as --compress gzip).")
    var gzip = false

    @Option(name: .customLong("compress"),
            help: ArgumentHelp("Compression of the archive: compress, gzip, bzip2, xz or zstd (lzop needs a libarchive built with liblzo2). tar-in detects it when this is not given.",
                               valueName: "compress|gzip|bzip2|xz|zstd"))
    var compress: String?

    @Flag(name: .customLong("xattrs"), help: "Extended attributes travel with the files (SCHILY.xattr.* pax keywords, as GNU tar --xattrs), except POSIX ACLs and SELinux labels.")
    var xattrs = false

    @Flag(name: .customLong("acls"), help: "POSIX ACLs travel with the files (SCHILY.acl.access and .default, as GNU tar --acls).")
    var acls = false

    func validate() throws {
        do { _ = try compression() } catch let e as CLIError { throw ValidationError(e.message) }
    }

    /// What --compress and -z choose (nil: none given).
    func compression() throws -> TarCompression? { try TarCompression.chosen(compress: compress, gzip: gzip) }
}
