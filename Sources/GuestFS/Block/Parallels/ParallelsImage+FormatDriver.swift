extension ParallelsImage {
    /// parallels (block/parallels.c): probed by "WithoutFreeSpace" or "WithouFreSpacExt" and
    /// version 2 in a whole 64-byte header, as QEMU's parallels_probe.
    static let formatDriver = ImageFormatDriver(
        format: .parallels, hasSnapshots: false,
        probe: { ParallelsFormat.probe($0) },
        describe: { file in
            // qemu-img info: QEMU's parallels driver has no bdrv_get_info, so neither a cluster
            // size nor a dirty flag is shown.
            let (_, size) = try readHeader(file)
            var d = ImageDescription(virtualSize: size)
            d.hasDriverInfo = false
            return d
        },
        check: { device in (device as? ParallelsImage)?.check() }
    ) { file, options, _ in
        try ParallelsImage(file: file, options: options)
    }
}
