import GuestFSBlock
import GuestFSFilesystem

/// The registration FilesystemRegistry lists.
extension NTFSFilesystem {
    /// Opens "ntfs" volumes read-only with the ntfs-3g options that shape `stat`
    /// (NTFSMountOptions); a writable open is refused in one line until writes land.
    package static let driver = FilesystemDriver(types: ["ntfs"], optionNames: NTFSMountOptions.names.union(NTFSMountOptions.ignoredNames)) { device, writable, options in
        if writable {
            throw ImageError(path: device.displayName, structure: "NTFS volume", reason: "NTFS is read-only in this version", errno: .readOnlyFileSystem)
        }
        return try NTFSFilesystem(device: device, options: NTFSMountOptions(parsing: options))
    }
}
