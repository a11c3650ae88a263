import SystemZlib

/// Compressed grains of stream-optimized extents: zlib streams (RFC 1950, with header, as QEMU's
/// uncompress() reads them), decompressed on the reading thread. The only VMDK file that
/// imports zlib.
enum VmdkCompression {
    /// Inflates `input` into `output`. A stream that ends before `output` is full leaves the
    /// rest zero (the last grain of a disk may be short); one that does not end in `input`
    /// or holds bad data throws.
    static func inflate(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(VmdkFormatError) {
        guard let inBase = input.baseAddress, let outBase = output.baseAddress, input.count > 0 else {
            throw .init("empty compressed grain")
        }
        var stream = z_stream()
        guard inflateInit_(&stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .init("cannot start deflate decoder")
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: inBase.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        stream.next_out = outBase.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(output.count)
        let rc = SystemZlib.inflate(&stream, Z_FINISH)
        guard rc == Z_STREAM_END else {
            let what = rc == Z_DATA_ERROR ? "invalid deflate data" : "deflate stream does not end within the grain (zlib status \(rc))"
            throw .init(what)
        }
        let produced = output.count - Int(stream.avail_out)
        if produced < output.count {
            UnsafeMutableRawBufferPointer(rebasing: output[produced...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}
