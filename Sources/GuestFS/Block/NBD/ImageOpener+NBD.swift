/// Opening an image on an NBD server: the export is the image file (`NBDSource`), and its
/// format is probed or given as for a local file, with the same probing policy.
extension ImageOpener {
    /// Connects to `uri` (writable only when the options ask for it and show no snapshot) and
    /// opens the export's content as its format. No QEMU lock bytes are taken: they are locks
    /// on a local file (`ImageLock`), and the server owns the file (see `NBDSource`).
    static func openNBD(uri: String, options: ImageOpenOptions, chain: inout BackingChainWalk) throws -> any BlockDevice {
        // The export is the chain's first link: no file, so no device and inode (0 is never a
        // real inode, so no loop check matches it), but what it names is a backing file.
        chain.seen.append((0, 0, uri))
        let writable = options.writable && options.snapshot == nil
        let source = try NBDSource(uri: uri, writable: writable)
        let format = try options.format ?? probe(source)
        let driver = try checkedDriver(format, path: uri, options: options)
        return try openFormat(source, driver: driver, path: uri, options: options, chain: &chain)
    }
}
