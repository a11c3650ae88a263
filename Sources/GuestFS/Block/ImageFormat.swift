/// The container formats imagemount opens, as `--format` spells them.
public enum ImageFormat: String, CaseIterable, Sendable {
    case raw
    case qcow2
    /// VHD (Microsoft Virtual PC / Hyper-V), by QEMU's name for it.
    case vpc
    /// VDI (VirtualBox).
    case vdi
    /// VHDX (Hyper-V).
    case vhdx
    /// VMDK (VMware).
    case vmdk
    /// qcow version 1 (QEMU's original format; qcow2 is its successor).
    case qcow
    /// QED (QEMU Enhanced Disk).
    case qed
    /// Parallels (Virtuozzo / Parallels Desktop disk images).
    case parallels

    /// File name extensions that vouch for the format when it is probed (the probing policy,
    /// `ImageOpener.formatIsVouched`): `vm.vhd` probed as vpc is what its name says.
    public var fileExtensions: [String] {
        switch self {
        case .vpc: ["vhd", "vpc"]
        case .parallels: ["hdd", "parallels"]
        default: [rawValue]
        }
    }

    /// Guesses the format from the first bytes of a file, as QEMU's probe does: the first
    /// registered format whose probe claims them (qcow2: the magic "QFI\xfb"); raw otherwise.
    public static func probe(header: [UInt8]) -> ImageFormat {
        ImageFormatRegistry.probe(header: header)
    }
}

/// Opens image files as block devices, probing or forcing their format.
public enum ImageOpener {
    /// Opens `path` as `format`, or as the probed format when `format` is nil.
    /// Backing files of a qcow2 image are opened read-only whatever `writable` says. Every file
    /// opened takes QEMU's lock bytes (`ImageLock`): a writable open fails while QEMU writes.
    public static func open(path: String, format: ImageFormat?, writable: Bool) throws -> any BlockDevice {
        try open(path: path, options: ImageOpenOptions(format: format, writable: writable))
    }
}
