/// Directories and extended attributes, decoded by the xfs-dir decoders over the forks this
/// driver maps (`fork(of:attr:)`) and its block reader.
extension XFSFilesystem {
    /// The directory inode `dir`, or ENOTDIR.
    func directoryInode(_ dir: UInt64) throws -> XFSInode {
        let i = try inode(dir)
        guard i.type == .directory else {
            throw ImageError(path: device.displayName, structure: "inode \(dir)", reason: "not a directory", errno: .notDirectory)
        }
        return i
    }

    func lookupEntry(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? {
        _ = try directoryInode(dir)
        throw pendingDecoder("directory")
    }

    func directoryEntries(_ dir: UInt64) throws -> [DirectoryEntry] {
        _ = try directoryInode(dir)
        throw pendingDecoder("directory")
    }

    func allAttributes(_ node: UInt64) throws -> [Xattr] {
        let i = try inode(node)
        guard i.attrFork != nil else { return [] }
        throw pendingDecoder("attribute")
    }

    func attributeValue(_ node: UInt64, name: String) throws -> [UInt8]? {
        try allAttributes(node).first { $0.name == name }?.value
    }

    private func pendingDecoder(_ what: String) -> ImageError {
        ImageError(path: device.displayName, structure: "XFS \(what)", reason: "XFS \(what) decoding is not wired in yet", errno: .notSupported)
    }
}
