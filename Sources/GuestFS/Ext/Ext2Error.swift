import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import SystemPackage

/// A libext2fs `errcode_t`, converted in this one place (STYLE.md §3).
///
/// Small values are plain errno; larger ones come from the com_err table `ext2_err.et`, whose
/// message we keep. The FUSE edge needs an `Errno`, so each code maps to one.
package struct Ext2Error: Error, CustomStringConvertible, Sendable {
    package let code: Int
    package let message: String

    init(code: errcode_t) {
        self.code = Int(code)
        self.message = String(cString: cext2fs_error_message(code))
    }

    /// The errno a caller should see for this code.
    package var errno: Errno {
        if code > 0 && code < 4096 { return Errno(rawValue: Int32(code)) }
        switch code {
        case EXT2_ET_BLOCK_ALLOC_FAIL, EXT2_ET_INODE_ALLOC_FAIL, EXT2_ET_DIR_NO_SPACE, EXT2_ET_EA_NO_SPACE,
             EXT2_ET_TOOSMALL, EXT2_ET_DIR_NO_SPACE_FOR_CSUM:
            return .noSpace
        case EXT2_ET_FILE_NOT_FOUND: return .noSuchFileOrDirectory
        case EXT2_ET_DIR_EXISTS, EXT2_ET_FILE_EXISTS: return .fileExists
        case EXT2_ET_RO_FILSYS: return .readOnlyFileSystem
        case EXT2_ET_FILE_TOO_BIG: return .fileTooLarge
        case EXT2_ET_NO_DIRECTORY: return .notDirectory
        case EXT2_ET_EA_KEY_NOT_FOUND: return .noData
        default: break
        }
        switch message {
        case _ where message.contains("not found"): return .noSuchFileOrDirectory
        case _ where message.contains("read-only"): return .readOnlyFileSystem
        case _ where message.contains("No free space") || message.contains("Could not allocate"): return .noSpace
        case _ where message.contains("unimplemented") || message.contains("Unimplemented"): return .notSupported
        default: return .ioError
        }
    }

    package var description: String { message }
}

/// Calls a libext2fs function and throws if it returns a non-zero `errcode_t`.
@inline(__always)
func ext2Check(_ code: errcode_t, structure: String, device: any BlockDevice, offset: UInt64? = nil) throws {
    guard code != 0 else { return }
    let error = Ext2Error(code: code)
    throw ImageError(path: device.displayName, offset: offset, structure: structure,
                     reason: error.message, errno: error.errno, underlying: error)
}
