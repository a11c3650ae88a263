import GuestFSBlock
import GuestFSFilesystem

/// The registration FilesystemRegistry lists. XFS is read-only here: a writable open is
/// refused in one line before anything is read, so `--rw`, copy-in and edit fail before
/// anything is written.
extension XFSFilesystem {
    /// Mount options the kernel's xfs takes (Documentation/admin-guide/xfs.rst, "Mount
    /// Options"); only `norecovery` changes what a read-only reader shows (the dirty log is not
    /// replayed), the others are accepted and ignored.
    static let ignoredOptionNames: Set<String> = [
        "allocsize", "attr2", "noattr2", "discard", "nodiscard", "grpid", "bsdgroups", "nogrpid", "sysvgroups",
        "filestreams", "ikeep", "noikeep", "inode32", "inode64", "largeio", "nolargeio", "logbufs", "logbsize",
        "logdev", "rtdev", "noalign", "norecovery", "nouuid", "noquota", "uquota", "usrquota", "quota", "uqnoenforce",
        "qnoenforce", "gquota", "grpquota", "gqnoenforce", "pquota", "prjquota", "pqnoenforce", "sunit", "swidth",
        "swalloc", "wsync", "dax", "barrier", "nobarrier", "lazytime", "nolazytime",
    ]

    /// The one line a writable open gets.
    static let readOnlyReason = "XFS is read-only in imagemount for now: mount without --rw"

    package static let driver = FilesystemDriver(types: ["xfs"], optionNames: ignoredOptionNames) { device, writable, options in
        if writable {
            throw ImageError(path: device.displayName, structure: "XFS", reason: readOnlyReason, errno: .readOnlyFileSystem)
        }
        return try XFSFilesystem(device: device, recoverLog: !options.contains("norecovery"))
    }
}
