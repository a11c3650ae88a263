import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// Which filesystems to use and how: `-m DEV[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]`, `-i`, `--root`,
/// `-r`/`--ro` and `-w`/`--rw`.
struct FilesystemOptions: ParsableArguments {
    @Flag(name: [.customShort("i"), .customLong("inspector")],
          help: "Inspect the disks and mount the operating system's filesystems as its /etc/fstab says, like guestmount -i.")
    var inspect = false

    @Option(name: .customLong("root"),
            help: ArgumentHelp("With -i (or no -m), the root filesystem to use when the disks hold several operating systems.",
                               valueName: "device"))
    var root: String?

    @Option(name: [.customShort("m"), .customLong("mount")],
            help: ArgumentHelp("Mount the filesystem on DEVICE at MOUNTPOINT in the guest tree (default /). DEVICE is /dev/sdXN (also vdXN, hdXN, xvdXN), an LVM volume /dev/VG/LV or /dev/mapper/VG-LV, UUID=..., LABEL=..., PARTUUID=... or PARTLABEL=.... OPTIONS, comma-separated as for mount(8): ro (this filesystem read-only even with --rw: writes under it fail with EROFS), rw, and defaults, noatime, nodiratime, relatime, strictatime, acl, user_xattr, errors=continue|remount-ro|panic, accepted and ignored (atimes are never updated; ACLs and xattrs are always on). Any other option is an error. FSTYPE (ext2, ext3 or ext4) must be what the volume holds.",
                               valueName: "device[:mountpoint[:options[:fstype]]]"))
    var mounts: [String] = []

    @Flag(name: [.customShort("r"), .customLong("ro")], help: "Open read-only (the default for reading commands).")
    var readOnly = false

    @Flag(name: [.customShort("w"), .customLong("rw")], help: "Open read-write.")
    var readWrite = false

    func validate() throws {
        if readOnly && readWrite { throw ValidationError("--ro and --rw cannot be used together") }
        if inspect && !mounts.isEmpty { throw ValidationError("-i and -m cannot be used together") }
        if root != nil && !mounts.isEmpty { throw ValidationError("--root goes with -i, not with -m") }
        // Every -m is checked here, before any image is opened.
        for m in mounts {
            do { _ = try MountSpec.parse(m) } catch { throw ValidationError(error.description) }
        }
    }

    /// `-m` parsed (validate() has already refused the ones that do not parse).
    var mountSpecs: [MountSpec] {
        mounts.compactMap { try? MountSpec.parse($0) }
    }
}
