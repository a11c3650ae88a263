import GuestFSBlock

/// One `key[=value]` item of a mount option string (fstab's fourth field, `-m DEV:MP:OPTS`),
/// with the checked conversions the drivers' options need (the kernel's fat and ntfs-3g's
/// uid=, gid=, umask=, fmask=, dmask=). A malformed value of an option a driver uses is EINVAL.
package struct MountOption {
    package let key: String
    package let value: String?
    /// The item as written and the driver it is for, for messages.
    private let item: Substring
    private let driver: String

    /// The items of `text` ("umask=022,uid=1000"), empty items skipped.
    package static func parse(_ text: String, driver: String) -> [MountOption] {
        text.split(separator: ",", omittingEmptySubsequences: true).map { item in
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            return MountOption(key: parts[0], value: parts.count > 1 ? parts[1] : nil, item: item, driver: driver)
        }
    }

    /// The error for a value this option cannot take.
    package func invalid() -> ImageError {
        ImageError(structure: "\(driver) option \(item)", reason: "invalid value", errno: .invalidArgument)
    }

    /// The value as octal permission bits (at most 0777).
    package func mode() throws -> UInt16 {
        guard let value, let v = UInt16(value, radix: 8), v <= 0o777 else { throw invalid() }
        return v
    }

    /// The value as a decimal uid or gid.
    package func number() throws -> UInt32 {
        guard let value, let v = UInt32(value) else { throw invalid() }
        return v
    }
}
