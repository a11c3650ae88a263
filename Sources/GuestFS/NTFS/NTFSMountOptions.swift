import GuestFSBlock
import GuestFSFilesystem

/// The ntfs-3g mount options that shape what `stat` shows when the `permissions` option is
/// off (ntfs-3g(8), "Options"): the owner and group of every file and the masks. NTFS's own
/// security descriptors are not mapped, as ntfs-3g does not map them without `permissions`.
package struct NTFSMountOptions: Sendable, Equatable {
    /// uid=, gid=: ntfs-3g's default is the mounting user; imagemount's is root (0).
    package var uid: UInt32 = 0
    package var gid: UInt32 = 0
    /// fmask=, dmask= (octal): bits cleared from 0777 on files and on directories; umask= sets
    /// both. ntfs-3g's default is 0 for both (every file 0777) when `permissions` is off.
    package var fmask: UInt32 = 0
    package var dmask: UInt32 = 0
    /// remove_hiberfile: write to a hibernated volume, deleting hiberfil.sys at the first change
    /// (NTFSVolumeSafety).
    package var removeHiberfile = false
    /// recover / norecover: whether an unclean $LogFile may be reset at the first change. nil
    /// when neither is given: imagemount then keeps such a volume read-only (ntfs-3g resets it).
    package var recover: Bool?

    package init() {}

    /// Whether an unclean $LogFile may be reset (recover, or remove_hiberfile without norecover).
    package var mayResetLog: Bool { recover ?? removeHiberfile }

    /// The option names this struct uses (FilesystemDriver.optionNames).
    package static let names: Set<String> = ["uid", "gid", "umask", "fmask", "dmask", "remove_hiberfile", "recover", "norecover"]
    /// ntfs-3g options that change nothing here (imagemount never updates atimes, always maps
    /// streams to user.* xattrs and ignores permissions, as ntfs-3g without `permissions`).
    package static let ignoredNames: Set<String> = ["ro", "rw", "noatime", "relatime", "atime", "locale", "streams_interface",
                                                    "user_xattr", "windows_names", "big_writes", "silent",
                                                    "force", "nls", "utf8", "iocharset"]

    /// Parses an fstab / `-m DEV:MP:OPTS` option string ("umask=022,uid=1000"); a malformed
    /// value of an option we use is EINVAL, other options are ignored.
    package init(parsing options: [String]) throws {
        self.init()
        for option in MountOption.parse(options.joined(separator: ","), driver: "ntfs") {
            switch option.key {
            case "uid": uid = try option.number()
            case "gid": gid = try option.number()
            case "umask": let m = UInt32(try option.mode()); fmask = m; dmask = m
            case "fmask": fmask = UInt32(try option.mode())
            case "dmask": dmask = UInt32(try option.mode())
            case "remove_hiberfile": removeHiberfile = true
            case "recover": recover = true
            case "norecover": recover = false
            default: continue
            }
        }
    }
}
