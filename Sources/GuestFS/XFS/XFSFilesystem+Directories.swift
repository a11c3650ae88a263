import GuestFSBlock
import GuestFSFilesystem

/// Directories and extended attributes, decoded by XFSDirectoryReader and XFSAttributeReader over the forks this
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

    /// The directory decoder over `dir`'s data fork.
    func directoryReader(_ dir: UInt64) throws -> XFSDirectoryReader {
        let i = try directoryInode(dir)
        guard let fork = try fork(of: i) else {
            throw ImageError(path: device.displayName, structure: "inode \(dir)", reason: "directory has no data fork", errno: .ioError)
        }
        return XFSDirectoryReader(geometry: geometry, inode: dir, fork: fork, size: i.size, read: blockReader)
    }

    /// Runs a directory decoder call, reporting damage once and naming the device.
    private func decoding<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ImageError {
            let named = e.withPath(device.displayName)
            if named.errno == .ioError { damage.report(named.description) }
            throw named
        }
    }

    /// From the listing cache when the directory was just listed (an exact name; on ascii-ci a
    /// miss still asks the decoder, which folds case), else by the decoder's hash lookup.
    func lookupEntry(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? {
        if let cached = listings.lookup(dir, name), cached != nil || !geometry.asciiCI { return cached }
        return try decoding { try directoryReader(dir).lookup(name) }
    }

    /// The entries; without ftype (v4 `-n ftype=0`) each type comes from the inode's mode, as
    /// the kernel's readdir does not (it says DT_UNKNOWN) but every caller would stat anyway.
    func directoryEntries(_ dir: UInt64) throws -> [DirectoryEntry] {
        let found = try decoding { try directoryReader(dir).entries() }
        let entries = found.map { e in
            var entry = e.protocolEntry
            if e.fileType == nil, let i = try? inode(e.inode) { entry.type = i.type }
            return entry
        }
        listings.store(dir, entries)
        return entries
    }

    /// The attribute decoder over `node`'s attribute fork, or nil when the inode has none.
    func attributeReader(_ node: UInt64) throws -> XFSAttributeReader? {
        let i = try inode(node)
        guard let fork = try fork(of: i, attr: true) else { return nil }
        return XFSAttributeReader(geometry: geometry, inode: node, fork: fork, read: blockReader)
    }

    func allAttributes(_ node: UInt64) throws -> [Xattr] {
        try decoding { try attributeReader(node)?.all() ?? [] }
    }

    func attributeValue(_ node: UInt64, name: String) throws -> [UInt8]? {
        try decoding { try attributeReader(node)?.value(name: name) }
    }
}
