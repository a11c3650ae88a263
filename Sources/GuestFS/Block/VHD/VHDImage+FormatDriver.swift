extension VHDImage {
    /// vpc (VHD, Microsoft's Virtual Hard Disk Image Format Specification; QEMU block/vpc.c):
    /// probed by the footer copy "conectix" at byte 0, as QEMU's vpc_probe; a fixed disk has its
    /// footer only at the end, probes as raw, and opens as vpc only with --format=vpc.
    static let formatDriver = ImageFormatDriver(
        format: .vpc, hasSnapshots: false,
        probe: { VHDFormat.probe($0) },
        describe: { file in describe(try VHDMetadata.read(from: file)) }
    ) { file, options, openBacking in
        try VHDImage(file: file, options: options, openBacking: openBacking)
    }

    /// qemu-img info's fields: the block size as cluster size for dynamic disks (vpc_get_info),
    /// no format-specific information.
    static func describe(_ m: VHDMetadata) -> ImageDescription {
        var d = ImageDescription(virtualSize: m.virtualSize)
        if case let .dynamic(_, _, blockSize, _) = m.layout { d.clusterSize = Int(blockSize) }
        return d
    }
}
