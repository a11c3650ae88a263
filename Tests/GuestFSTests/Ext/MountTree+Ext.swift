@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

// These tests exercise the ext driver itself through a mount tree: they reach the engine
// behind the protocol (ExtFilesystem.ext) and call it with the tree's 64-bit node ids.
extension MountTree {
    func ext(of node: GuestNode) -> Ext2Filesystem { (filesystem(of: node) as! ExtFilesystem).ext }
    func inode(_ node: GuestNode) throws -> Ext2Inode { try ext(of: node).inode(UInt32(node.inode)) }
}

extension Ext2Filesystem {
    func openFile(_ node: UInt64) throws -> Ext2File { try openFile(UInt32(node)) }
    func inode(_ node: UInt64) throws -> Ext2Inode { try inode(UInt32(node)) }
    func readlink(_ node: UInt64) throws -> [UInt8] { try readlink(UInt32(node)) }
    func xattrs(_ node: UInt64) throws -> [Xattr] { try xattrs(UInt32(node)) }
    func xattr(_ node: UInt64, name: String) throws -> [UInt8]? { try xattr(UInt32(node), name: name) }
}
