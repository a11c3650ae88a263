import GuestFS

/// Opens the drives and the filesystems a command asked for: the one place commands turn
/// their options into a `Guest` and a `MountTree`.
struct Session {
    let guest: Guest
    let tree: MountTree

    /// Opens the images and mounts what `-m` names, or the only filesystem when there is one.
    static func open(_ image: ImageOptions, _ fs: FilesystemOptions, writable: Bool = false) throws -> Session {
        let guest = try openGuest(image, writable: writable)
        return Session(guest: guest, tree: try mountTree(guest, fs, writable: writable))
    }

    static func openGuest(_ image: ImageOptions, writable: Bool = false) throws -> Guest {
        let guest = try Guest(drives: image.drives(), writable: writable)
        for warning in guest.warnings { Diagnostics.warn(warning) }
        return guest
    }

    static func mountTree(_ guest: Guest, _ fs: FilesystemOptions, writable: Bool) throws -> MountTree {
        var entries: [(device: GuestDevice, mountpoint: String)] = []
        if fs.mounts.isEmpty {
            let candidates = guest.extFilesystems
            guard candidates.count == 1, let only = candidates.first else {
                let names = candidates.map(\.name).joined(separator: ", ")
                throw CLIError(message: candidates.isEmpty
                    ? "\(guest.drives.map { $0.device.displayName }.joined(separator: ", ")): no ext2/ext3/ext4 filesystem found"
                    : "several filesystems found (\(names)): choose one with -m DEVICE")
            }
            entries = [(only, "/")]
        } else {
            for (name, mountpoint) in fs.mountSpecs {
                let device = try guest.device(named: name)
                guard device.content.isExt else {
                    throw CLIError(message: "\(name): \(device.content.type.map { "holds \($0), not" } ?? "holds no") ext2/ext3/ext4 filesystem")
                }
                entries.append((device, mountpoint))
            }
        }
        return try MountTree(entries: entries, writable: writable)
    }
}
