import CArchive

/// The compressions tar-in and tar-out take: guestfish's `compress:` names for tar-in/tar-out
/// (compress, gzip, bzip2, xz, lzop) and zstd, all through libarchive's own filters (none of
/// them runs a program: the sandbox forbids exec).
enum TarCompression: String, CaseIterable, Sendable {
    case none, compress, gzip, bzip2, xz, lzop, zstd

    /// Adds the write filter to `archive`; lzop is refused, since this libarchive has no liblzo2
    /// and would run the lzop program instead.
    func addWriteFilter(_ archive: OpaquePointer) -> Int32 {
        switch self {
        case .none: ARCHIVE_OK
        case .compress: carchive_archive_write_add_filter_compress(archive)
        case .gzip: carchive_archive_write_add_filter_gzip(archive)
        case .bzip2: carchive_archive_write_add_filter_bzip2(archive)
        case .xz: carchive_archive_write_add_filter_xz(archive)
        case .zstd: carchive_archive_write_add_filter_zstd(archive)
        case .lzop: ARCHIVE_FATAL
        }
    }

    /// Allows only this filter when reading (nil: every filter libarchive detects itself).
    func addReadFilter(_ archive: OpaquePointer) -> Int32 {
        switch self {
        case .none: ARCHIVE_OK
        case .compress: carchive_archive_read_support_filter_compress(archive)
        case .gzip: carchive_archive_read_support_filter_gzip(archive)
        case .bzip2: carchive_archive_read_support_filter_bzip2(archive)
        case .xz: carchive_archive_read_support_filter_xz(archive)
        case .zstd: carchive_archive_read_support_filter_zstd(archive)
        case .lzop: ARCHIVE_FATAL
        }
    }

    /// `--compress` and `-z` together: `-z` is gzip, and a different --compress is a mistake.
    static func chosen(compress: String?, gzip: Bool) throws -> TarCompression? {
        if let compress {
            guard let c = TarCompression(rawValue: compress) else {
                throw CLIError(message: "--compress \(compress): use one of \(allCases.filter { $0 != .none }.map(\.rawValue).joined(separator: ", "))")
            }
            if gzip && c != .gzip { throw CLIError(message: "-z (gzip) and --compress \(compress) cannot be used together") }
            if c == .lzop { throw CLIError(message: "--compress lzop: not available (libarchive is built without liblzo2 here)") }
            return c
        }
        return gzip ? .gzip : nil
    }
}
