extension Qcow1Image {
    /// qcow (version 1; QEMU block/qcow.c): probed by the magic "QFI\xfb" with version 1 in a
    /// whole 48-byte header, as QEMU's qcow_probe (qcow2's probe takes versions 2 and 3).
    static let formatDriver = ImageFormatDriver(
        format: .qcow, hasSnapshots: false,
        probe: { Qcow1Format.probe($0) },
        describe: { file in
            // qemu-img info: the cluster size (qcow_get_info), "encrypted" for AES images, the
            // backing file name with no format (qcow v1 records none); no format-specific fields.
            let m = try Qcow1Metadata.read(from: file)
            var d = ImageDescription(virtualSize: m.header.virtualSize, clusterSize: Int(m.header.clusterSize))
            d.encrypted = m.header.cryptMethod != Qcow1Format.cryptNone
            d.backingFilename = m.backingFile
            return d
        }
    ) { file, options, openBacking in
        try Qcow1Image(file: file, options: options, openBacking: openBacking)
    }
}
