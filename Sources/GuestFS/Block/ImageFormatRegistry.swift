/// One image format: how its files are recognised and opened. One registration per format,
/// listed in `ImageFormatRegistry` (raw last, since it matches anything).
public struct ImageFormatDriver: Sendable {
    public let format: ImageFormat
    /// Whether the file's first bytes (up to 512) are this format's (QEMU's bdrv_probe).
    public let probe: @Sendable ([UInt8]) -> Bool
    /// Whether `--snapshot`/internal snapshots apply (others refuse one before opening).
    public let hasSnapshots: Bool
    /// Opens `file` (a local file, locked, or an NBD export; writable when the options say so) as this format. `openBacking`
    /// opens a file the image names (its backing file) as the next link of the same chain;
    /// `options.mayOpenReferencedFiles` says whether it may be called (the probing policy).
    public let open: @Sendable (_ file: any ImageSource, _ options: ImageOpenOptions,
                                _ openBacking: (_ path: String, _ format: ImageFormat?) throws -> any BlockDevice) throws -> any BlockDevice
    /// What `info` shows about `file`, read from its metadata only (so it works without a key).
    public let describe: @Sendable (_ file: any ImageSource) throws -> ImageDescription
    /// The format's own consistency check of an opened image (`imagemount check`, as
    /// `qemu-img check`); nil when the format has no metadata to check, or when `device` is not
    /// an image this format opened.
    public let check: @Sendable (_ device: any BlockDevice) throws -> ImageCheckResult?

    public init(format: ImageFormat, hasSnapshots: Bool, probe: @escaping @Sendable ([UInt8]) -> Bool,
                describe: @escaping @Sendable (any ImageSource) throws -> ImageDescription,
                check: @escaping @Sendable (any BlockDevice) throws -> ImageCheckResult? = { _ in nil },
                open: @escaping @Sendable (any ImageSource, ImageOpenOptions, (String, ImageFormat?) throws -> any BlockDevice) throws -> any BlockDevice) {
        self.format = format
        self.hasSnapshots = hasSnapshots
        self.probe = probe
        self.describe = describe
        self.check = check
        self.open = open
    }
}

/// The formats imagemount opens, in probing order.
public enum ImageFormatRegistry {
    public static let drivers: [ImageFormatDriver] = [
        Qcow2Image.formatDriver,
        VHDImage.formatDriver,
        VDIImage.formatDriver,
        VHDXImage.formatDriver,
        VmdkImage.formatDriver,
        Qcow1Image.formatDriver,
        QEDImage.formatDriver,
        ParallelsImage.formatDriver,
        RawImage.formatDriver,
    ]

    /// The registration of `format` (every `ImageFormat` has one; raw when none matched).
    public static func driver(for format: ImageFormat) -> ImageFormatDriver {
        drivers.first { $0.format == format } ?? RawImage.formatDriver
    }

    /// The check of the format that opened `device`, and that format; nil when none checks it.
    public static func check(_ device: any BlockDevice) throws -> (format: ImageFormat, result: ImageCheckResult)? {
        for driver in drivers {
            if let result = try driver.check(device) { return (driver.format, result) }
        }
        return nil
    }

    /// The format whose probe claims `header`; raw when none does.
    public static func probe(header: [UInt8]) -> ImageFormat {
        drivers.first { $0.format != .raw && $0.probe(header) }?.format ?? .raw
    }
}
