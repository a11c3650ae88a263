import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Copies host files and trees into a guest filesystem, keeping what virt-copy-in (tar) keeps
/// and more: contents, modes, owners, access and modification times to the nanosecond,
/// symlinks (never followed), hardlinks (one guest inode per host inode), sparse holes,
/// device nodes, FIFOs and extended attributes (POSIX ACLs included). The mirror of `CopyOut`.
///
/// An existing guest directory is merged into; an existing non-directory is replaced.
final class CopyIn {
    let fs: any WritableGuestFilesystem
    /// Host (device, inode) of files with several links already copied, and their guest inode.
    private var linked: [HostInode: UInt64] = [:]
    private var warned: Set<String> = []
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)

    private struct HostInode: Hashable { let device: UInt64; let inode: UInt64 }

    /// Bytes and files copied, for `--progress`.
    let progress: ProgressReporter

    init(filesystem: any WritableGuestFilesystem, progress: ProgressReporter = .off) {
        fs = filesystem
        self.progress = progress
    }
    deinit { buffer.deallocate() }

    /// What copying `sources` needs: blocks (of the guest's size, plus one per directory and a
    /// margin for extent and xattr blocks) and inodes. Counted before anything is written, so
    /// that a copy that cannot fit fails with the image untouched. `bytes` is the regular
    /// files' total size, for progress.
    static func requirement(of sources: [HostPath], blockSize: UInt64) throws -> (blocks: UInt64, inodes: UInt64, bytes: UInt64) {
        var blocks: UInt64 = 0, inodes: UInt64 = 0, bytes: UInt64 = 0
        var seen: Set<HostInode> = []
        func visit(_ path: HostPath) throws {
            let st = try path.status()
            if st.st_nlink > 1 && st.st_mode & S_IFMT != S_IFDIR {
                guard seen.insert(HostInode(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))).inserted else { return }
            }
            inodes += 1
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                blocks += 1
                for name in try path.directoryNames() { try visit(path.appending(name)) }
            case S_IFREG:
                bytes += UInt64(st.st_size)
                let allocated = UInt64(st.st_blocks) * 512
                blocks += (min(allocated, UInt64(st.st_size)) + blockSize - 1) / blockSize
                blocks += UInt64(st.st_size) / (blockSize * 340 * 64) + 1
            case S_IFLNK:
                blocks += UInt64(st.st_size) >= 60 ? 1 : 0
            default:
                break
            }
        }
        for source in sources { try visit(source) }
        return (blocks, inodes, bytes)
    }

    /// Copies `source` into directory `dir` of the guest under `name`.
    func copy(_ source: HostPath, into dir: UInt64, name: [UInt8]) throws {
        let st = try source.status()
        let type = st.st_mode & S_IFMT
        let existing = try fs.lookup(dir, name)
        if let existing {
            let isDir = try fs.attributes(existing).isDirectory
            if type == S_IFDIR && isDir {
                try copyDirectoryContents(source, into: existing)
                try applyMetadata(st, source: source, to: existing)
                return
            }
            if isDir { throw CLIError(message: "\(source.display): a directory is in the way in the guest") }
            try fs.unlink(in: dir, name: name)
        }
        if type != S_IFDIR, st.st_nlink > 1, let first = linked[HostInode(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))] {
            try fs.link(first, into: dir, name: name)
            return
        }
        let mode = UInt16(truncatingIfNeeded: st.st_mode)
        let spec = NewInode(mode: mode, uid: st.st_uid, gid: st.st_gid)
        // As tar -x in the guest would leave it: the directory's default ACL is inherited at
        // creation (umask 0, as for root's tar -p), then the source's own xattrs and mode are
        // applied over it (a chmod rewrites an inherited ACL's mask: ACLInheritance.swift).
        let inherited = try fs.inheritedACL(directory: dir, mode: mode, umask: 0)
        let node: UInt64
        switch type {
        case S_IFDIR:
            node = try fs.makeDirectory(in: dir, name: name, NewInode(mode: 0o700, uid: st.st_uid, gid: st.st_gid))
            try fs.applyInheritedACL(node, inherited)
            try copyDirectoryContents(source, into: node)
        case S_IFREG:
            node = try fs.createNode(in: dir, name: name, spec)
            try fs.applyInheritedACL(node, inherited)
            try copyData(source, size: UInt64(st.st_size), to: node)
        case S_IFLNK:
            node = try fs.makeSymlink(in: dir, name: name, target: try source.linkTarget(), uid: st.st_uid, gid: st.st_gid)
        case S_IFIFO, S_IFCHR, S_IFBLK:
            var device = spec
            (device.rdevMajor, device.rdevMinor) = FuseServer.split(UInt64(st.st_rdev))
            node = try fs.createNode(in: dir, name: name, device)
            try fs.applyInheritedACL(node, inherited)
        default:
            warnOnce("sockets", "\(source.display): socket skipped (sockets cannot be copied)")
            return
        }
        if type == S_IFREG { progress.addFile() }
        if type != S_IFDIR, st.st_nlink > 1 {
            linked[HostInode(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))] = node
        }
        try applyMetadata(st, source: source, to: node)
    }

    private func copyDirectoryContents(_ source: HostPath, into dir: UInt64) throws {
        for name in try source.directoryNames() {
            try copy(source.appending(name), into: dir, name: name)
        }
    }

    /// Only the parts of the file that hold data are written; a trailing hole is a size.
    private func copyData(_ source: HostPath, size: UInt64, to node: UInt64) throws {
        let fd = try source.openForReading()
        defer { try? fd.close() }
        var end: UInt64 = 0
        for range in fd.dataRanges(size: size) {
            var offset = range.offset
            let stop = range.offset + range.length
            while offset < stop {
                let want = Int(min(UInt64(buffer.count), stop - offset))
                let n: Int
                do {
                    n = try fd.read(fromAbsoluteOffset: Int64(offset), into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]))
                } catch let e as Errno {
                    throw CLIError(message: "\(source.display): read: \(e.description)")
                }
                guard n > 0 else { break }
                var done = 0
                while done < n {
                    done += try fs.write(node, at: offset + UInt64(done), UnsafeRawBufferPointer(rebasing: buffer[done..<n]))
                }
                offset += UInt64(n)
                progress.add(bytes: UInt64(n))
            }
            end = offset
        }
        if end != size { try fs.truncate(node, to: size) }
    }

    /// Xattrs, then owner and mode, then times last (as tar does).
    private func applyMetadata(_ st: stat, source: HostPath, to node: UInt64) throws {
        for attribute in try source.xattrs() {
            do {
                try fs.setXattr(node, name: attribute.name, value: attribute.value, mode: .createOrReplace)
            } catch let e as ImageError where e.errno == .notSupported {
                warnOnce("xattr-\(attribute.name)", "\(source.display): \(attribute.name) not copied (\(e.reason))")
            }
        }
        var changes = AttributeChanges(uid: st.st_uid, gid: st.st_gid,
                                       accessTime: .at(Timestamp(seconds: Int64(st.st_atim.tv_sec), nanoseconds: Int32(st.st_atim.tv_nsec))),
                                       modificationTime: .at(Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec))))
        if st.st_mode & S_IFMT != S_IFLNK { changes.mode = UInt16(truncatingIfNeeded: st.st_mode) & 0o7777 }
        try fs.setAttributes(node, changes)
    }

    private func warnOnce(_ key: String, _ message: String) {
        if warned.insert(key).inserted { Diagnostics.warn(message) }
    }
}
