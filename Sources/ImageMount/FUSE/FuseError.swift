import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage

/// The error a handler answers with: an errno, after the rich error behind it was logged.
///
/// The one mapping from the image stack's errors to FUSE replies (STYLE.md rule 4): an
/// `ImageError` keeps its own errno (EIO for damage), a bare `Errno` passes through, and
/// anything else is EIO.
struct FuseError: Error {
    let errno: Errno

    init(_ errno: Errno) { self.errno = errno }

    init(wrapping error: any Error) {
        switch error {
        case let e as FuseError:
            self = e
        case let e as ImageError:
            if e.errno == .ioError || DebugLog.enabled { DebugLog.always("error: \(e.description)") }
            errno = e.errno
        case let e as Errno:
            errno = e
        default:
            DebugLog.always("error: \(error)")
            errno = .ioError
        }
    }
}

extension Request {
    /// Answers with `error`'s errno.
    consuming func reply(_ error: FuseError) {
        reply(error: error.errno)
    }
}
