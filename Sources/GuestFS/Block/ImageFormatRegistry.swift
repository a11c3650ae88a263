/// One image format: how its files are recognised and opened. One registration per format,
/// listed in `ImageFormatRegistry` (raw last, since it matches anything).
public struct ImageFormatDriver: Sendable {
    public let format: ImageFormat
    /// Whether the file's first bytes (up to 512) are this format's (QEMU's bdrv_probe).
    public let probe: @Sendable ([UInt8]) -> Bool
    /// Whether `--snapshot`/internal snapshots apply (others refuse one before opening).
    public let hasSnapshots: Bool
    /// Opens `file` (locked, writable when the options say so) as this format. `openBacking`
    /// opens a file the image names (its backing file) as the next link of the same chain;
    /// `options.mayOpenReferencedFiles` says whether it may be called (the probing policy).
    public let open: @Sendable (_ file: RawImage, _ options: ImageOpenOptions,
                                _ openBacking: (_ path: String, _ format: ImageFormat?) throws -> any BlockDevice) throws -> any BlockDevice

    public init(format: ImageFormat, hasSnapshots: Bool, probe: @escaping @Sendable ([UInt8]) -> Bool,
                open: @escaping @Sendable (RawImage, ImageOpenOptions, (String, ImageFormat?) throws -> any BlockDevice) throws -> any BlockDevice) {
        self.format = format
        self.hasSnapshots = hasSnapshots
        self.probe = probe
        self.open = open
    }
}

/// The formats imagemount opens, in probing order.
public enum ImageFormatRegistry {
    public static let drivers: [ImageFormatDriver] = [
        Qcow2Image.formatDriver,
        RawImage.formatDriver,
    ]

    /// The registration of `format` (every `ImageFormat` has one; raw when none matched).
    public static func driver(for format: ImageFormat) -> ImageFormatDriver {
        drivers.first { $0.format == format } ?? RawImage.formatDriver
    }

    /// The format whose probe claims `header`; raw when none does.
    public static func probe(header: [UInt8]) -> ImageFormat {
        drivers.first { $0.format != .raw && $0.probe(header) }?.format ?? .raw
    }
}
