extension VHDXImage {
    /// vhdx ([MS-VHDX]; QEMU block/vhdx.c): probed by "vhdxfile" at byte 0, as QEMU's vhdx_probe.
    static let formatDriver = ImageFormatDriver(
        format: .vhdx, hasSnapshots: false,
        probe: { VHDXFormat.probe($0) },
        describe: { file in
            // qemu-img info (QEMU 7.2): the block size as cluster size, nothing format-specific.
            // A dirty log replayed in memory first, as opening does (qemu-img refuses such a file read-only).
            let view = try VHDXMetadata.replayedView(of: file)
            let m = try VHDXMetadata.read(from: view.device, logReplayed: view.replayed)
            return ImageDescription(virtualSize: m.virtualSize, clusterSize: Int(m.blockSize))
        },
        check: { device in try (device as? VHDXImage)?.check() }
    ) { file, options, _ in
        try VHDXImage(file: file, options: options)
    }
}
