import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// The kernel vfat mount options that shape what `stat` shows (Documentation/filesystems/vfat.rst):
/// owner, group, permission masks, showexec, and the time offset. FAT stores none of these; the
/// kernel computes them per mount, and so do we.
package struct VfatMountOptions: Sendable, Equatable {
    /// uid=, gid=: the owner of every file (default 0, root).
    package var uid: UInt32 = 0
    package var gid: UInt32 = 0
    /// fmask=, dmask= (octal): permission bits cleared on files and on directories. umask= sets
    /// both. The kernel's default is the mounting process's umask; we take 0022.
    package var fmask: UInt16 = 0o022
    package var dmask: UInt16 = 0o022
    /// showexec: only .EXE, .COM and .BAT files get execute bits.
    package var showexec = false
    /// time_offset= (minutes east of UTC the stored local times are in); tz=UTC sets 0, the
    /// default here since no guest time zone is known (the kernel would use its own, sys_tz).
    package var timeOffsetMinutes: Int32 = 0

    package init() {}

    /// The option names this struct uses (FilesystemDriver.optionNames).
    package static let names: Set<String> = ["uid", "gid", "umask", "fmask", "dmask", "showexec", "tz", "time_offset"]

    /// Parses an fstab / `-m DEV:MP:OPTS` option string ("umask=0077,uid=1000,showexec").
    /// Options that do not change what the driver shows or writes (iocharset=, codepage=,
    /// shortname=, utf8, quiet, errors=, flush, rw, ro, noatime…) are accepted and ignored;
    /// a malformed value of one we use is EINVAL.
    package init(parsing text: String) throws {
        self.init()
        for option in MountOption.parse(text, driver: "vfat") {
            let value = option.value
            switch option.key {
            case "uid": uid = try option.number()
            case "gid": gid = try option.number()
            case "umask": let m = try option.mode(); fmask = m; dmask = m
            case "fmask": fmask = try option.mode()
            case "dmask": dmask = try option.mode()
            case "showexec": showexec = true
            case "tz":
                guard value == "UTC" else { throw option.invalid() }
                timeOffsetMinutes = 0
            case "time_offset":
                // The kernel accepts -24h … +24h in minutes.
                guard let value, let v = Int32(value), v >= -24 * 60, v <= 24 * 60 else { throw option.invalid() }
                timeOffsetMinutes = v
            default: continue
            }
        }
    }
}
