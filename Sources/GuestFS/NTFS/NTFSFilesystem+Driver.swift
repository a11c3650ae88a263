import GuestFSBlock
import GuestFSFilesystem

/// The registration FilesystemRegistry lists.
extension NTFSFilesystem {
    /// Opens "ntfs" volumes with the ntfs-3g options that shape `stat` and the safety rules
    /// (NTFSMountOptions); a writable open of a volume those rules keep read-only opens it
    /// read-only, with the reason as its warning.
    package static let driver = FilesystemDriver(types: ["ntfs"], optionNames: NTFSMountOptions.names.union(NTFSMountOptions.ignoredNames)) { device, writable, options in
        try NTFSFilesystem(device: device, writable: writable, options: NTFSMountOptions(parsing: options))
    }
}
