#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import SystemPackage

/// The checks ntfs-3g makes before it writes to a volume (libntfs-3g volume.c,
/// ntfs_device_mount: ntfs_volume_check_hiberfile and ntfs_volume_check_logfile; src/ntfs-3g.c,
/// ntfs_open), made on the read-only mount so that nothing is written to decide them:
///
/// - Windows hibernated, or shut down with Fast Startup (hiberfil.sys starts with "hibr" or
///   "HIBR"): writing would be lost, or would corrupt the volume, when Windows resumes. ntfs-3g
///   falls back to a read-only mount; `remove_hiberfile` makes it delete hiberfil.sys (and the
///   saved session with it) and mount read-write.
/// - $LogFile not clean (Windows did not shut down cleanly): ntfs-3g resets the log and mounts
///   read-write by default (`recover`), which drops what Windows had not yet written back.
///   imagemount opens such a volume read-only unless `recover` or `remove_hiberfile` is given,
///   because a VM's disk is more often inspected than repaired. A version 2.0 restart page
///   means Windows keeps metadata cached (Fast Startup): libntfs-3g refuses to write then
///   whatever the options (EPERM), and so do we.
struct NTFSVolumeSafety: Sendable {
    enum LogState: Sendable, Equatable {
        case clean
        case unclean
        /// A version 2.0 restart page (metadata kept in the Windows cache).
        case windowsCache
        case unreadable(String)
    }

    var hibernated = false
    /// libntfs-3g's own line ("Windows is hibernated, refused to mount.").
    var hibernationMessage = ""
    /// Set when hiberfil.sys could not be read (the volume is then not written).
    var hibernationError: String?
    var log: LogState = .clean

    /// Runs the checks on an open (read-only) volume, under the library lock.
    static func check(_ vol: UnsafeMutablePointer<ntfs_volume>) -> NTFSVolumeSafety {
        var safety = NTFSVolumeSafety()
        cntfs3g_log_clear()
        errno = 0
        // verbose = 1: libntfs-3g logs its reason as an error, which our shim keeps.
        if ntfs_volume_check_hiberfile(vol, 1) != 0 {
            let code = errno
            let line = String(cString: cntfs3g_log_last())
            if code == EPERM {
                safety.hibernated = true
                safety.hibernationMessage = line.isEmpty ? "Windows is hibernated, refused to mount." : line
            } else {
                safety.hibernationError = line.isEmpty ? Errno(rawValue: code == 0 ? EIO : code).description : line
            }
        }
        cntfs3g_log_clear()
        switch cntfs3g_logfile_state(vol) {
        case 0: safety.log = .clean
        case 1: safety.log = .unclean
        case 2: safety.log = .windowsCache
        default:
            let line = String(cString: cntfs3g_log_last())
            safety.log = .unreadable(line.isEmpty ? Errno(rawValue: errno == 0 ? EIO : errno).description : line)
        }
        cntfs3g_log_clear()
        return safety
    }

    /// Why a writable open must stay read-only with `options`, as one line; nil when it may write.
    func refusal(_ options: NTFSMountOptions) -> String? {
        let prefix = "NTFS volume opened read-only: "
        if let hibernationError {
            return prefix + "cannot read hiberfil.sys to tell whether Windows is hibernated (\(hibernationError))"
        }
        if hibernated && !options.removeHiberfile {
            var reason = hibernationMessage
            while reason.last == "." || reason.last == " " { reason.removeLast() }
            return prefix + "\(reason) (hiberfil.sys holds a hibernated or "
                + "Fast Startup session); resume and shut Windows down fully, or give the remove_hiberfile mount option "
                + "(-m DEVICE:MOUNTPOINT:remove_hiberfile) to delete hiberfil.sys and that session"
        }
        switch log {
        case .clean:
            return nil
        case .windowsCache:
            return prefix + "Metadata kept in Windows cache, refused to mount ($LogFile has a version 2.0 restart page: "
                + "Windows was shut down with Fast Startup); shut Windows down fully (shutdown /s /f /t 0)"
        case .unclean:
            if options.mayResetLog { return nil }
            return prefix + "The file system wasn't safely closed on Windows ($LogFile is not clean); give the recover "
                + "mount option to reset the log as ntfs-3g does (what Windows had not written back is lost), "
                + "or run chkdsk /f on Windows"
        case .unreadable(let why):
            return prefix + "cannot read $LogFile to tell whether the volume was closed cleanly (\(why))"
        }
    }

    /// What ntfs-3g's remove_hiberfile does once mounted read-write (src/ntfs-3g.c ntfs_open):
    /// hiberfil.sys is deleted from the root. Under the lock, on the read-write volume.
    static func removeHiberfile(_ vol: UnsafeMutablePointer<ntfs_volume>, filesystem: NTFSFilesystem) throws {
        let name = Array("hiberfil.sys".utf8)
        try filesystem.removeName(vol, in: NTFSFilesystem.rootRecord, name, directory: false)
    }
}
