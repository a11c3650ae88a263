import ArgumentParser
import GuestFS

/// Which filesystems to use and how: `-m DEV[:MOUNTPOINT]`, `-i`, `--root`, `--ro`/`--rw`.
struct FilesystemOptions: ParsableArguments {
    @Flag(name: [.customShort("i"), .customLong("inspector")],
          help: "Inspect the disks and mount the operating system's filesystems as its /etc/fstab says, like guestmount -i.")
    var inspect = false

    @Option(name: .customLong("root"),
            help: ArgumentHelp("With -i (or no -m), the root filesystem to use when the disks hold several operating systems.",
                               valueName: "device"))
    var root: String?

    @Option(name: [.customShort("m"), .customLong("mount")],
            help: ArgumentHelp("Mount the filesystem on DEVICE at MOUNTPOINT in the guest tree (default /). DEVICE is /dev/sdXN (also vdXN, hdXN, xvdXN), an LVM volume /dev/VG/LV or /dev/mapper/VG-LV, UUID=..., LABEL=..., PARTUUID=... or PARTLABEL=....",
                               valueName: "device[:mountpoint]"))
    var mounts: [String] = []

    @Flag(name: .customLong("ro"), help: "Open read-only (the default for reading commands).")
    var readOnly = false

    @Flag(name: .customLong("rw"), help: "Open read-write.")
    var readWrite = false

    func validate() throws {
        if readOnly && readWrite { throw ValidationError("--ro and --rw cannot be used together") }
        if inspect && !mounts.isEmpty { throw ValidationError("-i and -m cannot be used together") }
        if root != nil && !mounts.isEmpty { throw ValidationError("--root goes with -i, not with -m") }
        for m in mounts where m.split(separator: ":", omittingEmptySubsequences: false).first?.isEmpty ?? true {
            throw ValidationError("-m '\(m)': missing device name")
        }
    }

    /// `-m` parsed into (device, mountpoint) pairs.
    var mountSpecs: [(device: String, mountpoint: String)] {
        mounts.map { spec in
            // DEVICE may itself contain '=' (UUID=...) but not ':'; options after a second ':' are ignored.
            let parts = spec.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            return (parts[0], parts.count > 1 && !parts[1].isEmpty ? parts[1] : "/")
        }
    }
}
