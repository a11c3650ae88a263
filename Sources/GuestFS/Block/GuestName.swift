/// Names read from an image, checked before they reach the host or the kernel.
///
/// A directory entry's name is whatever bytes the image holds. The kernel's ext4 refuses to
/// hand out a name with a `/` or a NUL, or a second `.` or `..` (fs/ext4/dir.c,
/// `__ext4_check_dir_entry` and the VFS's `verify_dirent_name`); so do we. A name that fails
/// is skipped by every listing (with a warning naming the directory's inode), so it can never
/// be joined onto a host path or given to the kernel by the FUSE server.
public enum GuestName {
    public enum Problem: Sendable, Equatable, CustomStringConvertible {
        case empty, slash, nul, dot, dotDot, tooLong(Int)

        public var description: String {
            switch self {
            case .empty: "empty name"
            case .slash: "name contains '/'"
            case .nul: "name contains a NUL byte"
            case .dot: "a second '.' entry"
            case .dotDot: "a second '..' entry"
            case .tooLong(let n): "name of \(n) bytes (at most 255)"
            }
        }
    }

    /// NAME_MAX (include/uapi/linux/limits.h), also ext4's EXT4_NAME_LEN.
    public static let maxLength = 255

    /// Why `name` may not be used as one path component, or nil when it may.
    public static func problem(_ name: [UInt8]) -> Problem? {
        if name.isEmpty { return .empty }
        if name.count > maxLength { return .tooLong(name.count) }
        if name == [0x2E] { return .dot }
        if name == [0x2E, 0x2E] { return .dotDot }
        if name.contains(0x2F) { return .slash }
        if name.contains(0) { return .nul }
        return nil
    }

    /// The name as printable text for a warning: bytes outside printable ASCII as \xNN.
    public static func display(_ name: [UInt8]) -> String {
        var out = ""
        for b in name {
            if b >= 0x20 && b < 0x7F && b != 0x5C { out.unicodeScalars.append(Unicode.Scalar(b)) } else { out += "\\x" + String(b, radix: 16).leftPadded(to: 2) }
        }
        return out
    }
}


private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
