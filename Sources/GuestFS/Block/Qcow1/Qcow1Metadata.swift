/// What a qcow v1 image's metadata says, read without its data: the checked header and the
/// backing file name (for `info` and open).
struct Qcow1Metadata {
    let header: Qcow1Format.Header
    let l1Entries: Int
    /// The backing file as the image names it (up to its first NUL, as QEMU keeps it); nil when none.
    let backingFile: String?

    static func read(from file: any BlockDevice) throws -> Qcow1Metadata {
        guard file.size >= UInt64(Qcow1Format.headerSize) else {
            throw ImageError(path: file.displayName, offset: 0, structure: Qcow1Format.structure,
                             reason: "file of \(file.size) bytes is too small for a qcow header", errno: .invalidArgument)
        }
        let header = Qcow1Format.Header(try file.readBytes(at: 0, count: Qcow1Format.headerSize))
        let entries = try header.validated(path: file.displayName)
        var backing: String?
        if header.backingFileOffset != 0, header.backingFileSize > 0 {
            // QEMU reads the name with bdrv_pread, which reads past the end of the file as zeros.
            var raw = [UInt8](repeating: 0, count: Int(header.backingFileSize))
            try raw.withUnsafeMutableBytes { try file.readZeroPaddedPast(into: $0, at: header.backingFileOffset) }
            let name = Array(raw.prefix { $0 != 0 })
            if !name.isEmpty { backing = String(decoding: name, as: UTF8.self) }
        }
        return Qcow1Metadata(header: header, l1Entries: entries, backingFile: backing)
    }
}
