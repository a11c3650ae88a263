import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// The ext2/3/4 driver as the layers above see it: `Ext2Filesystem` (libext2fs through our
/// io_manager) behind the filesystem protocol. Node ids are inode numbers; an id above 2^32
/// names nothing (ESTALE).
package final class ExtFilesystem: WritableGuestFilesystem {
    package let ext: Ext2Filesystem

    package init(_ ext: Ext2Filesystem) { self.ext = ext }

    /// Opens the filesystem on `device` (journal replay, backup superblock: Ext2Filesystem).
    package convenience init(device: any BlockDevice, writable: Bool) throws {
        self.init(try Ext2Filesystem(device: device, writable: writable))
    }

    package var typeName: String { ext.superblock.typeName }
    package var device: any BlockDevice { ext.device }
    package var rootNode: UInt64 { UInt64(Ext2Filesystem.rootInode) }
    package var isWritable: Bool { ext.isWritable }
    package var blockSize: UInt32 { UInt32(ext.blockSize) }
    package var warnings: [String] { ext.warnings }
    /// Blocks count × block size from the superblock; a product past 2^64 (a hostile count)
    /// saturates, so it is still larger than any device, never a wrapped small size.
    package var declaredSize: UInt64 {
        let (bytes, overflow) = ext.superblock.blocksCount.multipliedReportingOverflow(by: UInt64(ext.blockSize))
        return overflow ? .max : bytes
    }
    package var label: String { ext.superblock.label }
    package var uuid: String { ext.superblock.uuid }

    private func inode(_ node: UInt64) throws -> UInt32 {
        // ESTALE (116): an id no inode can have, as for a handle the filesystem no longer knows.
        guard let number = UInt32(exactly: node) else { throw Errno(rawValue: 116) }
        return number
    }

    package func attributes(_ node: UInt64) throws -> NodeAttributes {
        Self.attributes(try ext.inode(inode(node)))
    }

    static func attributes(_ i: Ext2Inode) -> NodeAttributes {
        NodeAttributes(node: UInt64(i.number), mode: UInt32(i.mode), uid: i.uid, gid: i.gid, size: i.size,
                       blocks512: i.blocks512, links: i.links, atime: i.atime, mtime: i.mtime, ctime: i.ctime,
                       crtime: i.crtime, rdevMajor: i.rdevMajor, rdevMinor: i.rdevMinor, generation: i.generation)
    }

    package func lookup(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? {
        try ext.lookup(inode(dir), name).map { UInt64($0.inode) }
    }

    package func entries(_ dir: UInt64) throws -> [DirectoryEntry] {
        try ext.directoryEntries(inode(dir)).map { DirectoryEntry(name: $0.name, node: UInt64($0.inode), type: Self.type($0.fileType)) }
    }

    /// EXT2_FT_* to the neutral type (ext4 disk layout, "Linear (Classic) Directories").
    static func type(_ fileType: UInt8) -> NodeType {
        switch fileType {
        case DirEntry.typeRegular: .regular
        case DirEntry.typeDirectory: .directory
        case DirEntry.typeCharDevice: .characterDevice
        case DirEntry.typeBlockDevice: .blockDevice
        case DirEntry.typeFIFO: .fifo
        case DirEntry.typeSocket: .socket
        case DirEntry.typeSymlink: .symlink
        default: .unknown
        }
    }

    package func readlink(_ node: UInt64) throws -> [UInt8] { try ext.readlink(inode(node)) }
    package func openFile(_ node: UInt64) throws -> any GuestFile { try ext.openFile(inode(node)) }
    package func xattrs(_ node: UInt64) throws -> [Xattr] { try ext.xattrs(inode(node)) }
    package func xattr(_ node: UInt64, name: String) throws -> [UInt8]? { try ext.xattr(inode(node), name: name) }
    package func usage() throws -> FilesystemUsage { ext.usage() }
    package func setDamageLog(_ sink: @escaping @Sendable (String) -> Void) { ext.setDamageLog(sink) }
    package func close() throws { try ext.close() }

    // MARK: Writing

    package func createNode(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64 {
        UInt64(try ext.createNode(in: inode(dir), name: name, spec))
    }

    package func makeDirectory(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64 {
        UInt64(try ext.makeDirectory(in: inode(dir), name: name, spec))
    }

    package func makeSymlink(in dir: UInt64, name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) throws -> UInt64 {
        UInt64(try ext.makeSymlink(in: inode(dir), name: name, target: target, uid: uid, gid: gid))
    }

    package func link(_ target: UInt64, into dir: UInt64, name: [UInt8]) throws {
        try ext.link(inode(target), into: inode(dir), name: name)
    }

    package func unlink(in dir: UInt64, name: [UInt8]) throws { try ext.unlink(in: inode(dir), name: name) }
    package func removeDirectory(in dir: UInt64, name: [UInt8]) throws { try ext.removeDirectory(in: inode(dir), name: name) }

    package func rename(from srcDir: UInt64, _ srcName: [UInt8], to dstDir: UInt64, _ dstName: [UInt8], flags: RenameFlags) throws {
        try ext.rename(from: inode(srcDir), srcName, to: inode(dstDir), dstName, flags: flags)
    }

    package func write(_ node: UInt64, at offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Int {
        try ext.write(inode(node), at: offset, data)
    }

    package func truncate(_ node: UInt64, to size: UInt64) throws { try ext.truncate(inode(node), to: size) }
    package func setAttributes(_ node: UInt64, _ changes: AttributeChanges) throws { try ext.setAttributes(inode(node), changes) }

    package func allocate(_ node: UInt64, at offset: UInt64, length: UInt64, keepSize: Bool) throws {
        try ext.allocate(inode(node), at: offset, length: length, keepSize: keepSize)
    }

    package func punchHole(_ node: UInt64, at offset: UInt64, length: UInt64) throws {
        try ext.punchHole(inode(node), at: offset, length: length)
    }

    package func setXattr(_ node: UInt64, name: String, value: [UInt8], mode: XattrSetMode) throws {
        try ext.setXattr(inode(node), name: name, value: value, mode: mode)
    }

    package func removeXattr(_ node: UInt64, name: String) throws { try ext.removeXattr(inode(node), name: name) }
    package func releaseNode(_ node: UInt64) throws { try ext.releaseInode(inode(node)) }
    package func sync() throws { try ext.sync() }

    package func setNodeInUse(_ check: @escaping @Sendable (UInt64) -> Bool) {
        ext.setInodeInUse { check(UInt64($0)) }
    }
}

extension Ext2File: GuestFile {}

extension ExtFilesystem {
    /// The registration (FilesystemRegistry): ext2, ext3 and ext4; the mount options the
    /// kernel's ext4 takes change nothing here.
    package static let driver = FilesystemDriver(types: ["ext2", "ext3", "ext4"]) { device, writable, _ in
        try ExtFilesystem(device: device, writable: writable)
    }
}
