/// What an image format is opened over (`ImageFormatDriver.open`): a local file (`RawImage`) or
/// an export of an NBD server (`NBDSource`, Block/NBD/).
///
/// Why a protocol the two sources share, and not a pluggable backend inside `RawImage`: the
/// formats already read their file through `any BlockDevice` (Qcow2Image.file, VDI, VHD, VHDX,
/// VMDK), so what tied them to a local file was only the type in the registration. The raw
/// format returns the source itself, so a local raw image is still read by `RawImage.read`
/// directly, with no added indirection, and a local qcow2 image reads its file through the same
/// existential as before. qcow2's writer alone keeps wanting a `RawImage`: it grows the file
/// (`RawImage.writeExtending`), and an NBD export has a fixed size.
public protocol ImageSource: BlockDevice {
    /// Set when the format was probed as raw and the image is writable: a write that would make
    /// the first sector probe as another format is refused (EPERM), as QEMU's raw driver does
    /// (block/raw-format.c, raw_check_write), or the next probe would read the guest's bytes as
    /// an image header naming host files. Sources check it with `checkFirstSector`.
    var refusesImageHeaders: Bool { get set }
}

extension ImageSource {
    /// How much of the start of an image the format probe reads.
    static var probeBytes: UInt64 { 512 }

    /// The first sector as it would be after this write, probed: anything but raw is refused.
    /// Called by a source's `write` when `refusesImageHeaders` is set and the write touches the
    /// first `probeBytes`.
    func checkFirstSector(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        let length = Int(min(Self.probeBytes, size))
        var sector = try readBytes(at: 0, count: length)
        let from = Int(offset), to = min(length, from + buffer.count)
        if from < to { for i in from..<to { sector[i] = buffer[i - from] } }
        let probed = ImageFormat.probe(header: sector)
        if probed != .raw {
            throw ImageError(path: displayName, offset: 0, structure: "write",
                             reason: "refused: this write would put a \(probed.rawValue) header at the start of an image whose format was probed as raw (give --format=raw to allow it)",
                             errno: .notPermitted)
        }
    }
}
