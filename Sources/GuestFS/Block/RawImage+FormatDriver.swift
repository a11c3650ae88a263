extension RawImage {
    /// raw: the file is the disk. Probed rather than given (or vouched for by the file name),
    /// a writable raw image refuses writes that would make its first sector probe as another
    /// format (QEMU's raw_check_write; the probing policy, README "Probing").
    static let formatDriver = ImageFormatDriver(format: .raw, hasSnapshots: false, probe: { _ in true },
                                                describe: { file in ImageDescription(virtualSize: file.size) }) { file, options, _ in
        if !options.mayOpenReferencedFiles { file.refusesImageHeaders = true }
        return file
    }
}
