/// What a QED image's metadata says, read without its data: the checked header and the backing
/// file (for `info` and open).
struct QEDMetadata {
    let header: QEDFormat.Header
    /// The file size rounded down to a cluster (what QEMU checks offsets against).
    let fileSize: UInt64
    let l1Entries: Int
    /// The backing file name (up to its first NUL), nil without QED_F_BACKING_FILE.
    let backingFile: String?
    /// "raw" when QED_F_BACKING_FORMAT_NO_PROBE says the backing file must not be probed.
    var backingFormat: String? { backingFile != nil && header.features & QEDFormat.backingFormatNoProbe != 0 ? "raw" : nil }
    /// Whether QED_F_NEED_CHECK is set (the image was not closed cleanly; qemu-img info does not show it).
    var needsCheck: Bool { header.features & QEDFormat.needCheck != 0 }

    static func read(from file: any BlockDevice) throws -> QEDMetadata {
        guard file.size >= UInt64(QEDFormat.headerSize) else {
            throw ImageError(path: file.displayName, offset: 0, structure: QEDFormat.structure,
                             reason: "file of \(file.size) bytes is too small for a QED header", errno: .invalidArgument)
        }
        let header = QEDFormat.Header(try file.readBytes(at: 0, count: QEDFormat.headerSize))
        let (fileSize, entries) = try header.validated(path: file.displayName, fileSize: file.size)
        var backing: String?
        if header.features & QEDFormat.backingFile != 0 {
            var raw = [UInt8](repeating: 0, count: Int(header.backingNameSize))
            try raw.withUnsafeMutableBytes { try file.readZeroPaddedPast(into: $0, at: UInt64(header.backingNameOffset)) }
            let name = Array(raw.prefix { $0 != 0 })
            if !name.isEmpty { backing = String(decoding: name, as: UTF8.self) }
        }
        return QEDMetadata(header: header, fileSize: fileSize, l1Entries: entries, backingFile: backing)
    }
}
