import SystemPackage

/// The write entry points of a qcow2 image and the feature policy for opening one for writing
/// (QEMU's qcow2_do_open checks for read/write, qcow2_mark_dirty, qcow2_mark_clean).
extension Qcow2Image {
    /// Refuses what this writer must not write: the corrupt bit above all (qcow2 spec, "Header",
    /// incompatible feature bit 1: "the image must not be written to").
    static func checkWritable(_ meta: Qcow2Metadata, file: any BlockDevice) throws {
        let h = meta.header
        func refuse(_ reason: String, errno: Errno = .readOnlyFileSystem) -> ImageError {
            ImageError(path: file.displayName, offset: 72, structure: "qcow2 header", reason: reason, errno: errno)
        }
        if h.incompatible.contains(.corrupt) {
            throw refuse("the image is marked corrupt and must not be written; check it with 'imagemount check' or repair it with 'qemu-img check -r all'")
        }
        if h.incompatible.contains(.externalDataFile) {
            throw refuse("writing images with an external data file is not supported", errno: .notSupported)
        }
        if meta.extensions.bitmaps != nil {
            throw refuse("writing images with persistent dirty bitmaps is not supported", errno: .notSupported)
        }
        if file is NBDSource {
            throw refuse("writing a qcow2 image on an NBD export is not supported (the export cannot grow): serve it with 'qemu-nbd -f qcow2' and open the export as raw",
                         errno: .notSupported)
        }
        if file is RBDSource {
            throw refuse("writing a qcow2 image stored in RBD is not supported (the RBD image cannot grow from here): convert it to raw in RBD ('qemu-img convert -O raw IMG rbd:POOL/NAME') or open it read-only",
                         errno: .notSupported)
        }
        guard let raw = file as? RawImage, raw.isWritable else {
            throw refuse("the image file is not open for writing")
        }
    }

    /// Sets up the writer: refcounts rebuilt when the dirty bit says they may be stale, the dirty
    /// bit set for lazy refcounts, auto-clear bits cleared (their extensions are no longer kept).
    func openForWriting(_ raw: RawImage) throws {
        var ranges: [Range<UInt64>] = []
        let h = metadata.header
        if h.nbSnapshots > 0 {
            let bytes = metadata.snapshots.reduce(UInt64(0)) { $0 + UInt64($1.tableEntryBytes) }
            ranges.append(h.snapshotsOffset..<(h.snapshotsOffset + bytes))
            for s in metadata.snapshots where s.l1Size > 0 {
                ranges.append(s.l1TableOffset..<(s.l1TableOffset + UInt64(s.l1Size) * 8))
            }
        }
        let writer = Qcow2Writer(image: self, path: path, file: raw, map: map, refcounts: refcounts,
                                 corruption: corruption, metadata: metadata, snapshotRanges: ranges)
        if h.incompatible.contains(.dirty) {
            let result = try Qcow2Check.run(self, repair: true, sink: writer)
            if result.corruptions > 0 {
                throw ImageError(path: path, structure: "qcow2 header",
                                 reason: "the image was not closed cleanly and its refcounts cannot be rebuilt: \(result.corruptions) errors remain; repair it with 'qemu-img check -r all'",
                                 errno: .ioError)
            }
            try writer.setIncompatibleBits(clearing: Qcow2IncompatibleFeatures.dirty.rawValue)
        }
        if h.autoclearFeatures != 0 {
            var zero = UInt64(0)
            try withUnsafeBytes(of: &zero) { try writer.writeMetadata($0, at: 88, structure: .header) }
            try writer.barrier()
        }
        if h.compatible.contains(.lazyRefcounts) {
            try writer.markDirty()
        }
        corruption.setOnCorruption { [weak writer] in writer?.markCorrupt() }
        writerSlot.withLock { $0 = writer }
    }

    package func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard let writer else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: buffer.count, structure: "write")
        if buffer.isEmpty { return }
        try writer.write(buffer, length: buffer.count, at: offset)
    }

    /// Writes zeros, as zero clusters (or subclusters) where the image allows, else as data.
    package func writeZeros(at offset: UInt64, length: Int) throws {
        guard let writer else { throw readOnlyError(offset: offset) }
        try checkRange(offset: offset, length: length, structure: "write")
        if length == 0 { return }
        try writer.write(nil, length: length, at: offset)
    }

    /// Makes earlier writes durable (data, refcounts, L2 and L1 tables, in that order).
    package func flush() throws {
        try writer?.flush()
    }

    /// Flushes and closes for writing: clears the dirty bit set for lazy refcounts. Later writes
    /// fail; reads keep working. Called by `deinit` when not called before.
    package func close() throws {
        try writer?.close()
    }
}
