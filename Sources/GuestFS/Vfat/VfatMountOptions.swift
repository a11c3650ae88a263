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
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            let key = parts[0], value = parts.count > 1 ? parts[1] : nil
            func bad() -> ImageError {
                ImageError(structure: "vfat option \(item)", reason: "invalid value", errno: .invalidArgument)
            }
            func octal() throws -> UInt16 {
                guard let value, let v = UInt16(value, radix: 8), v <= 0o777 else { throw bad() }
                return v
            }
            func number() throws -> UInt32 {
                guard let value, let v = UInt32(value) else { throw bad() }
                return v
            }
            switch key {
            case "uid": uid = try number()
            case "gid": gid = try number()
            case "umask": let m = try octal(); fmask = m; dmask = m
            case "fmask": fmask = try octal()
            case "dmask": dmask = try octal()
            case "showexec": showexec = true
            case "tz":
                guard value == "UTC" else { throw bad() }
                timeOffsetMinutes = 0
            case "time_offset":
                // The kernel accepts -24h … +24h in minutes.
                guard let value, let v = Int32(value), v >= -24 * 60, v <= 24 * 60 else { throw bad() }
                timeOffsetMinutes = v
            default: continue
            }
        }
    }
}
