extension QEDImage {
    /// qed (QEMU Enhanced Disk; block/qed.c): probed by the magic "QED\0" in a whole 64-byte
    /// header, as QEMU's bdrv_qed_probe.
    static let formatDriver = ImageFormatDriver(
        format: .qed, hasSnapshots: false,
        probe: { QEDFormat.probe($0) },
        describe: { file in
            // qemu-img info (bdrv_qed_get_info): the cluster size only, so the dirty flag stays
            // false even with QED_F_NEED_CHECK set; the backing file, with "raw" as its format
            // under QED_F_BACKING_FORMAT_NO_PROBE (QEMU records no other backing format).
            let m = try QEDMetadata.read(from: file)
            var d = ImageDescription(virtualSize: m.header.imageSize, clusterSize: Int(m.header.clusterSize))
            d.backingFilename = m.backingFile
            d.backingFormat = m.backingFormat
            return d
        },
        check: { device in (device as? QEDImage)?.check() }
    ) { file, options, openBacking in
        try QEDImage(file: file, options: options, openBacking: openBacking)
    }
}
