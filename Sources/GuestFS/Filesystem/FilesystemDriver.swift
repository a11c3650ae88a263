import GuestFSBlock

/// One filesystem driver: the volume types (as the probe names them) it opens, and how.
public struct FilesystemDriver: Sendable {
    public let types: [String]
    /// The mount options it takes (`umask` for `umask=0077`), as the kernel's driver names them.
    public let optionNames: Set<String>
    /// Opens the filesystem on `device`; `options` are the mount options of `-m DEV:MP:OPTS`
    /// or the guest's fstab (a driver takes the ones the kernel's driver takes, ignores the rest).
    public let open: @Sendable (_ device: any BlockDevice, _ writable: Bool, _ options: [String]) throws -> any GuestFilesystem

    public init(types: [String], optionNames: Set<String> = [],
                open: @escaping @Sendable (any BlockDevice, Bool, [String]) throws -> any GuestFilesystem) {
        self.types = types
        self.optionNames = optionNames
        self.open = open
    }
}
