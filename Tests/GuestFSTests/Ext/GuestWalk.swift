import Testing
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import TestSupport

/// Walks a guest tree through the GuestFS API into the same shape `HostTree.walk` gives.
enum GuestWalk {
    static func walk(_ tree: MountTree, skipping: Set<[UInt8]> = [Array("lost+found".utf8)]) throws -> [[UInt8]: (facts: EntryFacts, node: GuestNode)] {
        var result: [[UInt8]: (EntryFacts, GuestNode)] = [:]
        func visit(_ node: GuestNode, _ relative: [UInt8]) throws {
            let fs = tree.ext(of: node)
            let inode = try fs.inode(node.inode)
            result[relative] = (try facts(inode, fs: fs), node)
            guard inode.isDirectory else { return }
            for entry in try tree.entries(node, rejected: { Issue.record("rejected \($0.message)") }) where !(relative.isEmpty && skipping.contains(entry.name)) {
                try visit(entry.node, relative.isEmpty ? entry.name : relative + [0x2F] + entry.name)
            }
        }
        try visit(tree.root, [])
        return result
    }

    static func facts(_ inode: Ext2Inode, fs: Ext2Filesystem) throws -> EntryFacts {
        let isDevice = inode.fileType == Ext2Inode.typeCharDevice || inode.fileType == Ext2Inode.typeBlockDevice
        return EntryFacts(mode: UInt32(inode.mode), uid: inode.uid, gid: inode.gid,
                          size: inode.isDirectory ? 0 : inode.size, links: UInt64(inode.links),
                          mtimeSeconds: inode.mtime.seconds,
                          symlinkTarget: inode.isSymlink ? try fs.readlink(inode.number) : nil,
                          rdev: isDevice ? glibcDev(inode.rdevMajor, inode.rdevMinor) : nil)
    }

    /// glibc's makedev encoding of a device number.
    static func glibcDev(_ major: UInt32, _ minor: UInt32) -> UInt64 {
        let ma = UInt64(major), mi = UInt64(minor)
        return ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
    }

    /// Opens an image holding one whole-disk filesystem, as the commands do.
    static func open(_ path: String, writable: Bool = false) throws -> (Guest, MountTree) {
        let guest = try Guest(drives: [DriveSpec(path: path)], writable: writable)
        guard let fs = guest.extFilesystems.first else { throw ImageError(reason: "no ext filesystem in \(path)") }
        return (guest, try MountTree(entries: [(fs, "/")], writable: writable))
    }

    static func readAll(_ file: Ext2File) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        var offset = 0
        while offset < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset...]), at: UInt64(offset)) }
            if n == 0 { break }
            offset += n
        }
        return bytes
    }
}
