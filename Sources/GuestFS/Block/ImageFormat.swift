/// The container formats imagemount opens, as `--format` spells them.
public enum ImageFormat: String, CaseIterable, Sendable {
    case raw
    case qcow2

    /// Guesses the format from the first bytes of a file, as QEMU's probe does:
    /// qcow2 starts with the magic "QFI\xfb" (qcow2 spec, "Header"); anything else is raw.
    public static func probe(header: [UInt8]) -> ImageFormat {
        if header.count >= 4, header[0] == 0x51, header[1] == 0x46, header[2] == 0x49, header[3] == 0xFB {
            return .qcow2
        }
        return .raw
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
