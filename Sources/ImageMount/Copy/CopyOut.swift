import GuestFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Copies guest files and trees to the host, keeping what virt-copy-out keeps and more:
/// contents, modes, access and modification times to the nanosecond, symlinks (never followed),
/// hardlinks (one host inode per guest inode), sparse holes, device nodes and FIFOs, extended
/// attributes, and owners when running as root.
final class CopyOut {
    let tree: MountTree
    let asRoot = geteuid() == 0
    /// Guest inodes with several links already copied, and where.
    private var linked: [GuestNode: HostPath] = [:]
    /// Warnings already given, so a tree of 10 000 files does not print 10 000 lines.
    private var warned: Set<String> = []
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)

    init(tree: MountTree) { self.tree = tree }
    deinit { buffer.deallocate() }

    /// Copies the guest object at `node` to `target` (which must not exist yet).
    func copy(_ node: GuestNode, to target: HostPath) throws {
        let fs = tree.filesystem(of: node)
        let info = try fs.inode(node.inode)
        if !info.isDirectory, info.links > 1, let first = linked[node] {
            try target.makeHardLink(to: first)
            return
        }
        switch info.fileType {
        case Ext2Inode.typeDirectory:
            try target.makeDirectory()
            for entry in try tree.entries(node) {
                try copy(entry.node, to: target.appending(entry.name))
            }
        case Ext2Inode.typeRegular:
            // Regular files get their metadata through the open descriptor, then are done.
            let fd = try target.createFile()
            defer { try? fd.close() }
            let file = HostFile(fd: fd, display: target.display)
            try copyData(fs.openFile(node.inode), to: file)
            if info.links > 1 { linked[node] = target }
            try applyMetadata(info, node: node, to: file)
            return
        case Ext2Inode.typeSymlink:
            try target.makeSymlink(to: fs.readlink(node.inode))
        case Ext2Inode.typeFIFO:
            try target.makeNode(mode: UInt32(S_IFIFO) | UInt32(info.permissions), major: 0, minor: 0)
        case Ext2Inode.typeCharDevice, Ext2Inode.typeBlockDevice:
            guard asRoot else {
                warnOnce("device nodes", "\(target.display): device node skipped (creating device nodes needs root)")
                return
            }
            try target.makeNode(mode: UInt32(info.mode), major: info.rdevMajor, minor: info.rdevMinor)
        default:
            warnOnce("sockets", "\(target.display): socket skipped (sockets cannot be copied)")
            return
        }
        if !info.isDirectory, info.links > 1 { linked[node] = target }
        try applyMetadata(info, node: node, to: target)
    }

    /// Writes only the parts of the file that hold data, then sets the length: holes stay holes.
    private func copyData(_ file: Ext2File, to target: HostFile) throws {
        let fd = target.fd
        var written: UInt64 = 0
        do {
            for range in try file.dataRanges() {
                var offset = range.offset
                let end = range.offset + range.length
                while offset < end {
                    let want = Int(min(UInt64(buffer.count), end - offset))
                    let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset)
                    guard n > 0 else { break }
                    _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                    offset += UInt64(n)
                }
                written = offset
            }
            // A trailing hole (or an empty file) needs the length set; otherwise writing already did it.
            if written != file.size { try target.setLength(file.size) }
        } catch let e as Errno {
            throw CLIError(message: "\(target.display): write: \(e.description)")
        }
    }

    /// Owner first (chown clears set-id bits), then xattrs, mode, and times last.
    private func applyMetadata(_ info: Ext2Inode, node: GuestNode, to target: HostPath) throws {
        if asRoot { try target.changeOwner(uid: info.uid, gid: info.gid) }
        try copyXattrs(node, set: target.setXattr)
        if !info.isSymlink { try target.changeMode(info.permissions) }
        try target.setTimes(access: info.atime, modification: info.mtime)
    }

    /// The same order for a regular file, through its open descriptor.
    private func applyMetadata(_ info: Ext2Inode, node: GuestNode, to target: HostFile) throws {
        if asRoot { try target.changeOwner(uid: info.uid, gid: info.gid) }
        try copyXattrs(node, set: target.setXattr)
        try target.changeMode(info.permissions)
        try target.setTimes(access: info.atime, modification: info.mtime)
    }

    /// Copies every xattr; one the host refuses (e.g. trusted.* without root) is warned about once per namespace.
    private func copyXattrs(_ node: GuestNode, set: (Xattr) throws -> Void) throws {
        for attribute in try tree.filesystem(of: node).xattrs(node.inode) {
            do {
                try set(attribute)
            } catch let e as CLIError {
                let kind = String(attribute.name.prefix(while: { $0 != "." }))
                warnOnce("xattr-\(kind)", "\(e.message) (further \(kind).* attributes that fail are not reported)")
            }
        }
    }

    private func warnOnce(_ key: String, _ message: String) {
        if warned.insert(key).inserted { Diagnostics.warn(message) }
    }
}
