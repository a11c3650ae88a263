import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFSNTFS

/// The drivers, keyed by the probed volume type: one registration per driver.
public enum FilesystemRegistry {
    public static let drivers: [FilesystemDriver] = [
        ExtFilesystem.driver,
        VfatFilesystem.driver,
        ISO9660Filesystem.driver,
        XFSFilesystem.driver,
        NTFSFilesystem.driver,
    ]

    /// Every type some driver opens (what `-m …:FSTYPE` may name).
    public static var types: [String] { drivers.flatMap(\.types) }

    /// Whether some driver takes the mount option `name` (the part before any `=`).
    public static func takesOption(_ name: String) -> Bool { drivers.contains { $0.optionNames.contains(name) } }

    /// The driver for a probed type, or nil.
    public static func driver(for type: String) -> FilesystemDriver? {
        drivers.first { $0.types.contains(type) }
    }

    /// Whether imagemount can open what the probe found.
    public static func canOpen(_ content: VolumeContent) -> Bool {
        content.type.map { driver(for: $0) != nil } ?? false
    }

    /// Opens the filesystem `device` holds. A device whose type the probe could not tell is
    /// tried as ext, whose opener looks further (a backup superblock when the primary is
    /// damaged, a whole-disk ext behind an empty MBR); a known type without a driver is
    /// refused in one line.
    public static func open(_ device: GuestDevice, writable: Bool, options: [String] = []) throws -> any GuestFilesystem {
        let driver: FilesystemDriver
        if let type = device.content.type {
            guard let found = self.driver(for: type) else {
                throw ImageError(reason: "\(device.name) holds \(type), which imagemount cannot open yet",
                                 errno: .notSupported)
            }
            driver = found
        } else {
            driver = ExtFilesystem.driver
        }
        do {
            return try driver.open(device.device, writable, options)
        } catch let e as ImageError {
            throw e.withPath(device.name)
        }
    }
}
