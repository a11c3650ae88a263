import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// The architecture a Windows executable was built for, from its PE header (Microsoft PE/COFF
/// specification: the MS-DOS stub's e_lfanew at 0x3C, the "PE\0\0" signature, then the COFF
/// file header's Machine field). libguestfs reads cmd.exe's with file(1) (daemon/filearch.ml).
public enum PEHeader {
    /// Bytes to read from the start of the file: e_lfanew may point past the usual 0x80–0x118
    /// stub, but a stub longer than this is no executable Windows ships.
    public static let headerBytes = 4096

    /// libguestfs's architecture names, or nil when `bytes` is not a PE file or the machine is
    /// one libguestfs does not name.
    public static func architecture(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 0x40, bytes[0] == 0x4D, bytes[1] == 0x5A else { return nil }
        let lfanew = Int(bytes[0x3C]) | Int(bytes[0x3D]) << 8 | Int(bytes[0x3E]) << 16 | Int(bytes[0x3F]) << 24
        // e_lfanew is a 32-bit field read into an Int: no overflow; the bounds check does the rest.
        guard lfanew >= 0x40, lfanew <= bytes.count - 6,
              bytes[lfanew] == 0x50, bytes[lfanew + 1] == 0x45, bytes[lfanew + 2] == 0, bytes[lfanew + 3] == 0 else { return nil }
        // IMAGE_FILE_MACHINE_* (PE/COFF specification, "Machine Types").
        switch UInt16(bytes[lfanew + 4]) | UInt16(bytes[lfanew + 5]) << 8 {
        case 0x014C: return "i386"
        case 0x8664: return "x86_64"
        case 0xAA64: return "aarch64"
        case 0x01C4: return "arm"
        default: return nil
        }
    }
}
