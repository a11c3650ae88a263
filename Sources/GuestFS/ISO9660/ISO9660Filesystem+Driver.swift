import GuestFSBlock
import GuestFSFilesystem

/// The registration FilesystemRegistry lists. ISO 9660 is read-only: a writable tree still
/// opens it, and every write under it is EROFS (MountTree.writableFilesystem), as the kernel's
/// isofs mounts read-only whatever is asked.
extension ISO9660Filesystem {
    /// Mount options the kernel's isofs takes (mount(8), "Mount options for iso9660") change
    /// nothing here yet: the tree is always shown as with none (Rock Ridge, else Joliet).
    static let ignoredOptionNames: Set<String> = ["norock", "nojoliet", "check", "uid", "gid", "map", "mode", "dmode",
                                                  "unhide", "block", "conv", "cruft", "session", "sbsector", "iocharset", "utf8"]

    package static let driver = FilesystemDriver(types: ["iso9660"], optionNames: ignoredOptionNames) { device, _, _ in
        try ISO9660Filesystem(device: device)
    }
}

extension ISO9660Filesystem {
    /// The El Torito catalog in the protocol's neutral terms (xorriso's names for emulations).
    package var bootImages: [BootImage] {
        bootEntries.map { entry in
            let emulation: String
            switch entry.emulation {
            case .noEmulation: emulation = "none"
            case .floppy1_2M: emulation = "fd1.2"
            case .floppy1_44M: emulation = "fd1.4"
            case .floppy2_88M: emulation = "fd2.8"
            case .hardDisk: emulation = "hd"
            case nil: emulation = "?"
            }
            return BootImage(number: entry.index + 1, platform: entry.platformName, bootable: entry.bootable,
                             emulation: emulation, startBlock: UInt64(entry.loadRBA), loadBytes: UInt64(entry.sectorCount) * 512)
        }
    }
}
