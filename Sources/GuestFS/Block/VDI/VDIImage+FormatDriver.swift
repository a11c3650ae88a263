extension VDIImage {
    /// vdi (VirtualBox; QEMU block/vdi.c): probed by the signature 0xbeda107f at byte 0x40 of a
    /// whole 512-byte header, as QEMU's vdi_probe.
    static let formatDriver = ImageFormatDriver(
        format: .vdi, hasSnapshots: false,
        probe: { VDIFormat.probe($0) },
        describe: { file in
            // qemu-img info: the block size as cluster size (vdi_get_info), nothing format-specific.
            let (_, size, _) = try readHeader(file)
            return ImageDescription(virtualSize: size, clusterSize: Int(VDIFormat.blockSize))
        },
        check: { device in (device as? VDIImage)?.check() }
    ) { file, options, _ in
        try VDIImage(file: file, options: options)
    }
}
