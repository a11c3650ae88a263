import ArgumentParser
import GuestFS

/// Which filesystems to use and how: `-m DEV[:MOUNTPOINT]`, `--ro`/`--rw`.
struct FilesystemOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .customLong("mount")],
            help: ArgumentHelp("Mount the filesystem on DEVICE at MOUNTPOINT in the guest tree (default /). DEVICE is /dev/sdXN (also vdXN, hdXN, xvdXN), UUID=..., LABEL=..., PARTUUID=... or PARTLABEL=....",
                               valueName: "device[:mountpoint]"))
    var mounts: [String] = []

    @Flag(name: .customLong("ro"), help: "Open read-only (the default for reading commands).")
    var readOnly = false

    @Flag(name: .customLong("rw"), help: "Open read-write.")
    var readWrite = false

    func validate() throws {
        if readOnly && readWrite { throw ValidationError("--ro and --rw cannot be used together") }
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
