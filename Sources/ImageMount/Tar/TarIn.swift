import GuestFSBlock
import GuestFSFilesystem
import GuestFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Unpacks a tar archive into a guest directory, as virt-tar-in does (guestfish `tar-in`, which
/// runs `tar -C DIR -xf -` as root in the appliance), through the writable filesystem protocol
/// only: nothing is written on the host.
///
/// The archive is hostile input. Every member name goes through `TarMemberName` (a leading '/'
/// removed, `..` refused, each component a valid guest name) and is looked up from DIR one
/// component at a time without following anything: a member below a symlink, or below any
/// non-directory, is refused, so no member lands outside DIR (GNU tar gets there by making
/// such symlinks last; refusing is simpler and leaves nothing to undo). A refused member is
/// one line naming it; the others are extracted and the command fails at the end, as GNU tar
/// does. Data streams in libarchive's blocks; a sparse member's holes are left unwritten.
///
/// As GNU tar run by root: owners are the archive's numeric ids, modes are kept, a new file
/// inherits its directory's default ACL, a missing parent is made 0755 root:root, an existing
/// non-directory is replaced and an existing directory merged into; the modification time is
/// the archive's and the access time the time of extraction (GNU tar's `set_stat`).
/// Directory times are set once everything is in (creating entries changes them).
final class TarIn {
    struct Options {
        var xattrs = false
        var acls = false
        var selinux = false
    }

    let tree: MountTree
    let top: GuestNode
    let options: Options
    let progress: ProgressReporter
    /// Members refused or failed: reported, and the command fails at the end.
    private(set) var skipped = 0
    private var warned: Set<String> = []
    /// Directories made or merged into whose metadata waits, as GNU tar's delay_set_stat
    /// does: their times change while members go in, and a default ACL or mode set early would
    /// pass on to the members. Applied, deepest first, once a member outside them comes (so
    /// the stack is as deep as the tree, not as long as the archive), and at the end.
    private var delayed: [(components: [[UInt8]], node: GuestNode, header: TarHeader)] = []
    private let start = Timestamp.now
    /// Host names for ACL entries stored by name (read before the sandbox).
    let names: TarNameMap

    init(tree: MountTree, top: GuestNode, options: Options, names: TarNameMap, progress: ProgressReporter) {
        self.tree = tree
        self.top = top
        self.options = options
        self.names = names
        self.progress = progress
    }

    /// Extracts every member; a failure of the archive itself (truncated, not tar, bad
    /// compression) stops there, after the directory times are set.
    func run(_ reader: TarArchiveReader) throws {
        defer { leaveDirectories(toward: nil) }
        while let entry = try reader.next() {
            progress.setBytes(reader.consumed)
            let header: TarHeader
            do {
                header = try TarHeader(entry, names: names)
            } catch let problem as TarHeaderProblem {
                if case .bad(let reason) = problem { refuse(TarHeader.path(entry), reason) }
                continue
            }
            for name in header.unresolvedNames {
                warnOnce("acl-name-\(name)", "tar-in: \(GuestName.display(header.path)): ACL entry for '\(name)' left out (no such user or group on this host)")
            }
            do {
                try extract(header, reader)
            } catch let e as MemberRefused {
                refuse(header.path, e.reason)
            }
            progress.addFile()
        }
        progress.setBytes(reader.consumed)
    }

    private struct MemberRefused: Error { let reason: String }

    private func refuse(_ name: [UInt8], _ reason: String) {
        Diagnostics.line("imagemount: tar-in: \(GuestName.display(name)): \(reason)\n")
        skipped += 1
    }

    // MARK: One member

    private func extract(_ header: TarHeader, _ reader: TarArchiveReader) throws {
        let components: [[UInt8]]
        switch TarMemberName.components(header.path) {
        case .failure(let problem): throw MemberRefused(reason: "name \(problem)")
        case .success(let parsed):
            if parsed.strippedRoot { warnOnce("root", "tar-in: removing leading '/' from member names") }
            components = parsed.components
        }
        leaveDirectories(toward: components)
        guard let last = components.last else {
            // "./": DIR itself; as GNU tar, it takes the member's metadata when it is a directory.
            if header.type == .directory { delay(components, top, header) }
            return
        }
        let parent = try parentDirectory(components.dropLast(), member: header.path)
        if let target = header.hardlinkTarget {
            try makeHardLink(header, to: target, in: parent, name: last)
            return
        }
        let fs = try writable(parent)
        let existing = try tree.lookup(parent, last)
        if let existing {
            let isDirectory = try tree.attributes(existing).isDirectory
            if header.type == .directory && isDirectory {
                delay(components, existing, header)
                return
            }
            if tree.isMountpoint(parent, last) { throw MemberRefused(reason: "a mountpoint is in the way; not extracted") }
            if isDirectory { throw MemberRefused(reason: "a directory is in the way in the guest; not extracted") }
            try guest("replace") { try fs.unlink(in: parent.inode, name: last) }
        }
        let mode = UInt16(truncatingIfNeeded: header.type.modeBits) | header.permissions
        let inherited = try guest("create") { try fs.inheritedACL(directory: parent.inode, mode: mode, umask: 0) }
        let node: UInt64
        switch header.type {
        case .directory:
            node = try guest("mkdir") {
                try fs.makeDirectory(in: parent.inode, name: last, NewInode(mode: 0o700, uid: header.uid, gid: header.gid))
            }
            try guest("create") { try fs.applyInheritedACL(node, inherited) }
        case .regular:
            node = try guest("create") {
                try fs.createNode(in: parent.inode, name: last, NewInode(mode: mode, uid: header.uid, gid: header.gid))
            }
            try guest("create") { try fs.applyInheritedACL(node, inherited) }
            try writeData(header, reader, fs, node)
        case .symlink:
            guard let target = header.symlinkTarget, !target.isEmpty else { throw MemberRefused(reason: "symlink without a target; not extracted") }
            node = try guest("symlink") { try fs.makeSymlink(in: parent.inode, name: last, target: target, uid: header.uid, gid: header.gid) }
        case .fifo, .characterDevice, .blockDevice:
            node = try guest("mknod") {
                try fs.createNode(in: parent.inode, name: last,
                                  NewInode(mode: mode, uid: header.uid, gid: header.gid, rdevMajor: header.rdevMajor, rdevMinor: header.rdevMinor))
            }
            try guest("mknod") { try fs.applyInheritedACL(node, inherited) }
        default:
            warnOnce("type", "tar-in: \(GuestName.display(header.path)): sockets and unknown member types are not extracted")
            return
        }
        let made = GuestNode(mount: parent.mount, inode: node)
        if header.type == .directory { delay(components, made, header) } else { try applyMetadata(header, to: made, directory: false) }
    }

    /// Keeps a directory's metadata until the members below it are in.
    private func delay(_ components: [[UInt8]], _ node: GuestNode, _ header: TarHeader) {
        if let last = delayed.last, last.components == components {
            delayed[delayed.count - 1].header = header
        } else {
            delayed.append((components, node, header))
        }
    }

    /// Applies the delayed metadata of every directory that is not an ancestor of (or the
    /// same as) the member at `components`; of all of them when nil (the end).
    private func leaveDirectories(toward components: [[UInt8]]?) {
        while let last = delayed.last {
            if let components, components.starts(with: last.components) { break }
            delayed.removeLast()
            do {
                try applyMetadata(last.header, to: last.node, directory: true)
            } catch let e as MemberRefused {
                refuse(last.header.path, e.reason)
            } catch {
                refuse(last.header.path, LsCommand.describe(error))
            }
        }
    }

    /// Walks (and makes, where missing) the directories above a member, from DIR, never
    /// following a symlink: each component must be a directory already or not exist yet.
    private func parentDirectory(_ components: ArraySlice<[UInt8]>, member: [UInt8]) throws -> GuestNode {
        var dir = top
        for name in components {
            if let child = try tree.lookup(dir, name) {
                let info = try tree.attributes(child)
                guard info.isDirectory else {
                    throw MemberRefused(reason: "\(GuestName.display(name)) on its path is \(info.isSymlink ? "a symbolic link" : "not a directory"), " +
                                        "which tar-in never goes through; not extracted")
                }
                dir = child
            } else {
                let fs = try writable(dir)
                let made = try guest("mkdir") { try fs.makeDirectory(in: dir.inode, name: name, NewInode(mode: 0o755, uid: 0, gid: 0)) }
                let inherited = try guest("mkdir") { try fs.inheritedACL(directory: dir.inode, mode: UInt16(NodeType.directory.modeBits) | 0o755, umask: 0o022) }
                try guest("mkdir") { try fs.applyInheritedACL(made, inherited) }
                dir = GuestNode(mount: dir.mount, inode: made)
            }
        }
        return dir
    }

    /// A hard link: its target, resolved from DIR the same way, must be a non-directory
    /// already extracted on the same filesystem.
    private func makeHardLink(_ header: TarHeader, to target: [UInt8], in parent: GuestNode, name: [UInt8]) throws {
        guard case .success(let parsed) = TarMemberName.components(target), let targetName = parsed.components.last else {
            throw MemberRefused(reason: "hard link to \(GuestName.display(target)), which cannot be a member's name; not extracted")
        }
        let targetDir = try parentDirectory(parsed.components.dropLast(), member: header.path)
        guard let node = try tree.lookup(targetDir, targetName) else {
            throw MemberRefused(reason: "hard link to \(GuestName.display(target)), which is not in the directory; not extracted")
        }
        let targetInfo = try tree.attributes(node)
        guard !targetInfo.isDirectory else { throw MemberRefused(reason: "hard link to a directory; not extracted") }
        guard node.mount == parent.mount else { throw MemberRefused(reason: "hard link across filesystems; not extracted") }
        let fs = try writable(parent)
        if let existing = try tree.lookup(parent, name) {
            if existing == node { return }
            if try tree.attributes(existing).isDirectory { throw MemberRefused(reason: "a directory is in the way in the guest; not extracted") }
            try guest("replace") { try fs.unlink(in: parent.inode, name: name) }
        }
        try guest("link") { try fs.link(node.inode, into: parent.inode, name: name) }
    }

    /// The member's data blocks at their offsets (holes are offsets that never come), then
    /// the size: a trailing hole is a length, not zeros written.
    private func writeData(_ header: TarHeader, _ reader: TarArchiveReader, _ fs: any WritableGuestFilesystem, _ node: UInt64) throws {
        let display = GuestName.display(header.path)
        var end: UInt64 = 0
        while let block = try reader.nextBlock(member: display) {
            guard block.offset >= 0 else { throw MemberRefused(reason: "data at a negative offset; cut short") }
            let offset = UInt64(block.offset)
            // libarchive keeps blocks inside the member's size; checked again, as the size bounds the file.
            let (stop, overflow) = offset.addingReportingOverflow(UInt64(block.bytes.count))
            guard !overflow, stop <= header.size else { throw MemberRefused(reason: "data beyond the member's size; cut short") }
            var done = 0
            while done < block.bytes.count {
                let n = try guest("write") {
                    try fs.write(node, at: offset + UInt64(done), UnsafeRawBufferPointer(rebasing: block.bytes[done...]))
                }
                guard n > 0 else { throw MemberRefused(reason: "write: no progress; cut short") }
                done += n
            }
            end = max(end, stop)
            progress.setBytes(reader.consumed)
        }
        if end != header.size { try guest("truncate") { try fs.truncate(node, to: header.size) } }
    }

    /// Xattrs and ACLs as asked, then owner, mode and times (mode after the ACLs: a chmod
    /// rewrites the ACL's mask, as tar's own order has it).
    private func applyMetadata(_ header: TarHeader, to node: GuestNode, directory: Bool) throws {
        let fs = try writable(node)
        for x in header.xattrs {
            let wanted: Bool
            switch x.name {
            case POSIXACL.accessName, POSIXACL.defaultName: wanted = options.acls
            case "security.selinux": wanted = options.selinux
            default:
                // Only the namespaces a program may set (xattr(7)); system.* other than the ACLs
                // is the filesystem's own (ext4's system.data holds inline data).
                wanted = options.xattrs
                if wanted, !["user.", "trusted.", "security."].contains(where: { x.name.hasPrefix($0) }) {
                    warnOnce("xattr-ns-\(x.name)", "tar-in: \(GuestName.display(header.path)): xattr \(x.name) not extracted (not a user, trusted or security attribute)")
                    continue
                }
            }
            guard wanted else { continue }
            setXattr(fs, node, x.name, x.value, header.path)
        }
        if options.acls {
            if let acl = header.accessACL { setXattr(fs, node, POSIXACL.accessName, acl.bytes, header.path) }
            if let acl = header.defaultACL, directory { setXattr(fs, node, POSIXACL.defaultName, acl.bytes, header.path) }
        }
        var changes = AttributeChanges(uid: header.uid, gid: header.gid, accessTime: .at(start), modificationTime: .at(header.mtime))
        if header.type != .symlink { changes.mode = header.permissions }
        try guest("set attributes") { try fs.setAttributes(node.inode, changes) }
    }

    /// One xattr; one the filesystem cannot hold (vfat) is warned about once per name.
    private func setXattr(_ fs: any WritableGuestFilesystem, _ node: GuestNode, _ name: String, _ value: [UInt8], _ member: [UInt8]) {
        do {
            try fs.setXattr(node.inode, name: name, value: value, mode: .createOrReplace)
        } catch let e as ImageError where e.errno == .notSupported {
            warnOnce("xattr-\(name)", "tar-in: \(GuestName.display(member)): \(name) not extracted (\(e.reason))")
        } catch {
            refuse(member, "set xattr \(name): \(LsCommand.describe(error))")
        }
    }

    private func writable(_ node: GuestNode) throws -> any WritableGuestFilesystem {
        if tree.isReadOnly(node) {
            throw CLIError(message: "tar-in: \(tree.mounts[node.mount].deviceName): mounted read-only (-m ...:ro)")
        }
        return try tree.writableFilesystem(of: node)
    }

    /// A guest operation whose failure (ENOSPC, EFBIG, EPERM on vfat…) refuses this member
    /// with the driver's reason instead of ending the whole extraction.
    private func guest<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as ImageError {
            if e.errno == .noSpace || e.errno == .readOnlyFileSystem {
                throw CLIError(message: "tar-in: \(what): \(e.description)")
            }
            throw MemberRefused(reason: "\(what): \(e.reason)")
        } catch let e as Errno {
            if e == .noSpace { throw CLIError(message: "tar-in: \(what): \(e.description)") }
            throw MemberRefused(reason: "\(what): \(e.description)")
        }
    }

    private func warnOnce(_ key: String, _ message: String) {
        if warned.insert(key).inserted { Diagnostics.warn(message) }
    }
}
