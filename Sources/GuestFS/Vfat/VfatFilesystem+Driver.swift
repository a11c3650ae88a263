import GuestFSBlock
import GuestFSFilesystem

/// The registration FilesystemRegistry lists, and the protocol's facts about the volume.
extension VfatFilesystem {
    /// Opens "vfat" volumes (what the probe names FAT12/16/32) with the kernel vfat options the
    /// driver uses (VfatMountOptions); the others are accepted and ignored.
    package static let driver = FilesystemDriver(types: ["vfat"], optionNames: VfatMountOptions.names.union(ignoredOptionNames)) { device, writable, options in
        try VfatFilesystem(device: device, writable: writable, options: VfatMountOptions(parsing: options.joined(separator: ",")))
    }

    /// Options of the kernel's vfat (mount(8), "Mount options for fat/vfat") that change
    /// nothing here, so that `-m DEV:MP:OPTS` and fstab lines that carry them still mount.
    static let ignoredOptionNames: Set<String> = ["iocharset", "codepage", "shortname", "utf8", "quiet", "flush", "allow_utime",
                                                  "usefree", "nonumtail", "discard", "check", "uni_xlate", "nfs", "dos1xfloppy"]

    /// The bytes the boot sector says the volume spans (BPB_TotSec16/32 × BPB_BytsPerSec).
    package var declaredSize: UInt64 { boot.volumeBytes }

    /// As the kernel's fat_fill_super warns ("Volume was not properly unmounted"): the volume
    /// was marked dirty when opened.
    package var warnings: [String] {
        wasDirtyAtOpen
            ? ["\(device.displayName): FAT volume was not properly unmounted (dirty bit set); some data may be corrupt, run fsck.fat"]
            : []
    }
}
