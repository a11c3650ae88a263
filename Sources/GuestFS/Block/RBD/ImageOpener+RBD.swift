/// Opening an image stored in Ceph RBD: the RBD image is the image file (`RBDSource`), and its
/// format is probed or given as for a local file, with the same probing policy.
extension ImageOpener {
    /// Opens the RBD image `name` names (writable only when the options ask for it and show no
    /// snapshot; an `@SNAP` in the name is always read-only) and opens its content as its format.
    static func openRBD(name: String, options: ImageOpenOptions, chain: inout BackingChainWalk) throws -> any BlockDevice {
        // The RBD image is the chain's first link: no file, so no device and inode (0 is never
        // a real inode, so no loop check matches it).
        chain.seen.append((0, 0, name))
        let writable = options.writable && options.snapshot == nil
        let source = try RBDSource(name: name, client: options.rbdClient, writable: writable)
        let format = try options.format ?? probe(source)
        let driver = try checkedDriver(format, path: name, options: options)
        return try openFormat(source, driver: driver, path: name, options: options, chain: &chain)
    }
}
