import GuestFSBlock
import GuestFSFilesystem
import GuestFS
#if canImport(Glibc)
import Glibc
#endif

/// Packs a guest directory into a tar archive, as virt-tar-out does (guestfish `tar-out`,
/// which runs `tar -C DIR -cf - .` in the appliance): members are named `./` and
/// `./PATH`, in directory order, with modes, numeric owners, access and modification times to
/// the nanosecond, symlinks (never followed), hard links as links to the first name met,
/// FIFOs and device nodes; with the options, xattrs, POSIX ACLs and SELinux labels. A file with
/// holes (its driver's extent map says where the data is) becomes a GNU sparse member.
///
/// One thread walks the tree and streams each file in 1 MiB chunks: memory stays bounded by
/// the buffer, libarchive's block and the hard-link table (files with several links only).
final class TarOut {
    struct Options {
        var xattrs = false
        var acls = false
        var selinux = false
        /// GNU tar `--exclude` wildcards (fnmatch), matched unanchored: against the member's
        /// whole name and every tail that starts after a '/'.
        var excludes: [String] = []
    }

    let tree: MountTree
    let writer: TarArchiveWriter
    let options: Options
    let progress: ProgressReporter
    /// Guest inodes with several links already archived, and the member name they got.
    private var linked: [GuestNode: [UInt8]] = [:]
    /// Directories already archived: one met again (a directory hard link or loop, only in a
    /// damaged or hostile image) is skipped, so the walk is bounded by the image.
    private var visited: Set<GuestNode> = []
    private var depth = 0
    /// Entries left out because the image is damaged there; the command fails at the end.
    private(set) var skipped = 0
    private var warned: Set<String> = []
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
    /// What holes are passed as: a read-only anonymous mapping of `holeChunk` bytes (zero pages,
    /// no memory used; the pax writer only counts hole bytes, it never reads them), so that a
    /// hole costs one call per GiB, not one per MiB.
    private let zeros: UnsafeRawBufferPointer

    static let holeChunk = 1 << 30
    /// Larger files are left out with a warning: no filesystem here makes them (ext4 stops at
    /// 16 TiB) and even passing the holes of a hostile 2^63-byte size would take hours.
    static let maxFileSize: UInt64 = 1 << 50

    init(tree: MountTree, writer: TarArchiveWriter, options: Options, progress: ProgressReporter) {
        self.tree = tree
        self.writer = writer
        self.options = options
        self.progress = progress
        let mapped = mmap(nil, Self.holeChunk, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if let mapped, mapped != MAP_FAILED {
            zeros = UnsafeRawBufferPointer(start: mapped, count: Self.holeChunk)
        } else {
            // No mapping: the (zeroed) data buffer's size, at more calls per hole.
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            zeros = UnsafeRawBufferPointer(buffer)
        }
    }

    deinit {
        if zeros.baseAddress != UnsafeRawPointer(buffer.baseAddress) { munmap(UnsafeMutableRawPointer(mutating: zeros.baseAddress), zeros.count) }
        buffer.deallocate()
    }

    /// Archives the directory `top` and what is below it.
    func run(_ top: GuestNode, display: String) throws {
        let info = try tree.attributes(top)
        guard info.isDirectory else { throw CLIError(message: "\(display): not a directory in the guest") }
        try add(top, info, relative: [])
    }

    private func add(_ node: GuestNode, _ info: NodeAttributes, relative: [UInt8]) throws {
        let name = Array("./".utf8) + relative
        if !relative.isEmpty && excluded(name) { return }
        var member = TarMember(path: name, kind: .regular, permissions: info.permissions, uid: info.uid, gid: info.gid,
                               atime: info.atime, mtime: info.mtime)
        if !info.isDirectory, info.links > 1 {
            if let first = linked[node] {
                member.kind = .hardlink(to: first)
                try writer.writeHeader(member)
                progress.addFile()
                return
            }
            linked[node] = name
        }
        let fs = tree.filesystem(of: node)
        try addMetadata(&member, fs, node)
        switch info.type {
        case .directory:
            guard visited.insert(node).inserted else {
                Diagnostics.warn("\(display(name)): skipped: guest directory inode \(node.inode) was met before " +
                                 "(a directory hard link or loop: the image is damaged)")
                skipped += 1
                return
            }
            member.kind = .directory
            try writer.writeHeader(member)
            progress.addFile()
            guard depth < DirectoryWalkPath.maxDepth else {
                warnOnce("depth", DirectoryWalkPath.depthWarning(path: display(name)))
                skipped += 1
                return
            }
            depth += 1
            defer { depth -= 1 }
            let entries = try tree.entries(node) { rejected in
                Diagnostics.warn(rejected.message)
                skipped += 1
            }
            for entry in entries {
                let child = try tree.attributes(entry.node)
                try add(entry.node, child, relative: relative.isEmpty ? entry.name : relative + [0x2F] + entry.name)
            }
        case .regular:
            try addRegular(&member, fs.openFile(node.inode))
        case .symlink:
            let target = try fs.readlink(node.inode)
            guard !target.contains(0) else {
                Diagnostics.warn("\(display(name)): skipped: symlink target contains a NUL byte (the image is damaged)")
                skipped += 1
                return
            }
            member.kind = .symlink(target: target)
            try writer.writeHeader(member)
        case .fifo:
            member.kind = .fifo
            try writer.writeHeader(member)
        case .characterDevice, .blockDevice:
            member.kind = info.type == .characterDevice ? .characterDevice : .blockDevice
            member.rdevMajor = info.rdevMajor
            member.rdevMinor = info.rdevMinor
            try writer.writeHeader(member)
        default:
            // GNU tar too leaves sockets out ("socket ignored").
            warnOnce("sockets", "\(display(name)): socket ignored (tar cannot hold sockets)")
            return
        }
        if !info.isDirectory { progress.addFile() }
    }

    /// Xattrs, ACLs and the SELinux label, each only when asked for (as guestfish's
    /// `xattrs:`, `acls:` and `selinux:` flags): the ACLs travel as SCHILY.acl.*, not as the
    /// system.posix_acl_* xattrs they are stored as.
    private func addMetadata(_ member: inout TarMember, _ fs: any GuestFilesystem, _ node: GuestNode) throws {
        guard options.xattrs || options.acls || options.selinux else { return }
        for x in try fs.xattrs(node.inode) {
            switch x.name {
            case POSIXACL.accessName, POSIXACL.defaultName:
                guard options.acls else { continue }
                do {
                    let acl = try POSIXACL(x.value, name: x.name)
                    if x.name == POSIXACL.accessName { member.accessACL = acl } else { member.defaultACL = acl }
                } catch let e as ImageError {
                    Diagnostics.warn("\(display(member.path)): \(x.name) not archived: \(e.reason)")
                }
            case "security.selinux":
                if options.selinux { member.xattrs.append(x) }
            default:
                if options.xattrs { member.xattrs.append(x) }
            }
        }
    }

    /// The header, then the data ranges in order; holes between them are passed as zeros,
    /// which the pax writer skips (they are in its sparse map, not in the archive).
    private func addRegular(_ member: inout TarMember, _ file: any GuestFile) throws {
        let size = file.size
        guard size <= Self.maxFileSize else {
            Diagnostics.warn("\(display(member.path)): skipped: \(size) bytes long, more than tar-out archives (the image is damaged)")
            skipped += 1
            return
        }
        let ranges = Self.normalized(try file.dataRanges(), size: size)
        member.size = size
        let whole = ranges.isEmpty ? size == 0 : ranges.count == 1 && ranges[0].offset == 0 && ranges[0].length == size
        if !whole { member.dataRanges = ranges }
        try writer.writeHeader(member)
        var position: UInt64 = 0
        for range in (whole ? [(offset: UInt64(0), length: size)] : ranges) {
            while position < range.offset {
                // Exactly up to the hole's end: the pax writer reads the bytes after it as data.
                let n = Int(min(UInt64(zeros.count), range.offset - position))
                try writer.writeData(UnsafeRawBufferPointer(rebasing: zeros[..<n]))
                position += UInt64(n)
                progress.add(bytes: UInt64(n))
            }
            let end = range.offset + range.length
            while position < end {
                let want = Int(min(UInt64(buffer.count), end - position))
                let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: position)
                // A file shorter than it says: libarchive pads the member with zeros at its end.
                guard n > 0 else { return }
                try writer.writeData(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                position += UInt64(n)
                progress.add(bytes: UInt64(n))
            }
        }
        // The trailing hole too: the pax writer puts the sparse map out with the first data
        // it is given, so an all-hole file needs this call to have a map at all.
        if !whole {
            while position < size {
                let n = Int(min(UInt64(zeros.count), size - position))
                try writer.writeData(UnsafeRawBufferPointer(rebasing: zeros[..<n]))
                position += UInt64(n)
                progress.add(bytes: UInt64(n))
            }
        }
        if position < size { progress.add(bytes: size - position) }
    }

    /// The driver's ranges sorted, clipped to the file and without overlaps (a damaged extent
    /// map may give them otherwise), adjacent ones merged.
    static func normalized(_ ranges: [(offset: UInt64, length: UInt64)], size: UInt64) -> [(offset: UInt64, length: UInt64)] {
        var out: [(offset: UInt64, length: UInt64)] = []
        for r in ranges.sorted(by: { $0.offset < $1.offset }) where r.offset < size && r.length > 0 {
            let end = r.offset + min(r.length, size - r.offset)
            if let last = out.last, r.offset <= last.offset + last.length {
                let lastEnd = last.offset + last.length
                if end > lastEnd { out[out.count - 1].length = end - last.offset }
            } else {
                out.append((r.offset, end - r.offset))
            }
        }
        return out
    }

    /// GNU tar's default for --exclude: wildcards, unanchored, '*' matching '/' too.
    private func excluded(_ name: [UInt8]) -> Bool {
        guard !options.excludes.isEmpty else { return false }
        var tails: [[UInt8]] = [name]
        for (i, b) in name.enumerated() where b == 0x2F && i + 1 < name.count { tails.append(Array(name[(i + 1)...])) }
        return options.excludes.contains { pattern in
            tails.contains { tail in tail.withNulTerminated { fnmatch(pattern, $0, 0) == 0 } }
        }
    }

    private func display(_ name: [UInt8]) -> String { GuestName.display(name) }

    private func warnOnce(_ key: String, _ message: String) {
        if warned.insert(key).inserted { Diagnostics.warn(message) }
    }
}
