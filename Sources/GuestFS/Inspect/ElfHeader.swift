import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// The architecture a binary was built for, from its ELF header
/// (System V ABI, "ELF Header": e_ident[EI_CLASS], e_ident[EI_DATA], e_machine).
public enum ElfHeader {
    /// libguestfs's architecture names ("x86_64", "i386", "aarch64"...), or nil when `bytes` is not ELF.
    public static func architecture(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 20, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else { return nil }
        let is64 = bytes[4] == 2
        let bigEndian = bytes[5] == 2
        let machine = bigEndian ? UInt16(bytes[18]) << 8 | UInt16(bytes[19]) : UInt16(bytes[19]) << 8 | UInt16(bytes[18])
        switch machine {
        case 3: return "i386"
        case 62: return "x86_64"
        case 40: return "arm"
        case 183: return "aarch64"
        case 20: return "ppc"
        case 21: return bigEndian ? "ppc64" : "ppc64le"
        case 22: return is64 ? "s390x" : "s390"
        case 243: return is64 ? "riscv64" : "riscv32"
        case 258: return "loongarch64"
        case 8: return is64 ? "mips64" : "mips"
        case 2, 43: return is64 ? "sparc64" : "sparc"
        default: return nil
        }
    }
}
