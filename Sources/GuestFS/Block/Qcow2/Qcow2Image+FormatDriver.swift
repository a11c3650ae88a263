extension Qcow2Image {
    /// qcow2 (docs/interop/qcow2.txt): the magic "QFI\xfb" at byte 0 ("Header"); opened with
    /// its backing chain below it, internal snapshots, compression and encryption.
    static let formatDriver = ImageFormatDriver(format: .qcow2, hasSnapshots: true, probe: { header in
        header.count >= 4 && header[0] == 0x51 && header[1] == 0x46 && header[2] == 0x49 && header[3] == 0xFB
    }) { file, options, openBacking in
        try Qcow2Image(file: file, options: options, openBacking: openBacking)
    }
}
