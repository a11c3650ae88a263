import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// One `-m DEVICE[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]`, split as guestmount splits it (libguestfs
/// options.c, OPTION_m): DEVICE may contain `=` (UUID=…) but not `:`; an empty MOUNTPOINT is `/`.
struct MountSpec: Equatable {
    var device: String
    var mountpoint: String
    /// `ro` in OPTIONS (the last of `ro`/`rw` wins, as for mount(8)).
    var readOnly: Bool
    /// FSTYPE, checked against what the volume probe found.
    var fstype: String?
    /// Options a filesystem driver takes (vfat's umask=, uid=…), passed on to it.
    var driverOptions: [String] = []

    /// Mount options that change nothing here: imagemount never updates atimes (as `noatime`),
    /// always stores and enforces POSIX ACLs and user xattrs, and reports errors to the caller
    /// instead of remounting or panicking.
    static let ignoredOptions: Set<String> = ["defaults", "noatime", "nodiratime", "relatime", "strictatime", "acl", "user_xattr"]
    /// ext4's `errors=` values (mount(8), "Mount options for ext4").
    static let errorsValues: Set<String> = ["continue", "remount-ro", "panic"]
    /// The FSTYPE values a driver here answers to.
    static var knownTypes: Set<String> { Set(FilesystemRegistry.types) }

    /// Parses `text`; the error is one sentence naming the -m and the offending part.
    static func parse(_ text: String) throws(MountSpecError) -> MountSpec {
        let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        guard let device = parts.first, !device.isEmpty else { throw MountSpecError("-m '\(text)': missing device name") }
        var spec = MountSpec(device: device, mountpoint: parts.count > 1 && !parts[1].isEmpty ? parts[1] : "/",
                             readOnly: false, fstype: nil)
        if parts.count > 2 {
            for option in parts[2].split(separator: ",").map(String.init) {
                switch option {
                case "ro": spec.readOnly = true
                case "rw": spec.readOnly = false
                case _ where ignoredOptions.contains(option): continue
                case _ where FilesystemRegistry.takesOption(String(option.split(separator: "=", maxSplits: 1).first ?? "")):
                    spec.driverOptions.append(option)
                case _ where option.hasPrefix("errors="):
                    guard errorsValues.contains(String(option.dropFirst("errors=".count))) else {
                        throw MountSpecError("-m '\(text)': '\(option)': errors= takes continue, remount-ro or panic")
                    }
                default:
                    throw MountSpecError("-m '\(text)': unknown mount option '\(option)' (known: ro, rw, \(ignoredOptions.sorted().joined(separator: ", ")), errors=)")
                }
            }
        }
        if parts.count > 3 && !parts[3].isEmpty {
            guard knownTypes.contains(parts[3]) else {
                throw MountSpecError("-m '\(text)': unknown filesystem type '\(parts[3])' (imagemount mounts \(FilesystemRegistry.types.joined(separator: ", ")))")
            }
            spec.fstype = parts[3]
        }
        return spec
    }
}

/// A `-m` that cannot be used, as one line.
struct MountSpecError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
