import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// The shell's cp, cp-r and cp-a: a copy from the guest's tree into the guest's tree, as GNU
/// cp does it in the daemon (guestfs_cp runs `cp`, cp_r `cp -rP`, cp_a `cp -a`).
///
/// - cp copies one file, its symlinks followed; a new file takes the source's mode less the
///   umask and root as owner, an existing one keeps its inode, mode and owner.
/// - cp-r copies directories too, symlinks as symlinks, device nodes and FIFOs as nodes, merging
///   into directories that exist.
/// - cp-a also keeps modes exactly, owners, access and modification times (to the
///   nanosecond), extended attributes (POSIX ACLs included) and hard links within the copy.
///
/// Holes stay holes (cp's --sparse=auto): only the source's data ranges are read and written.
/// A copy into its own source (cp-a /a /a/b, also through a symlink) is refused as cp refuses
/// it; the directories a copy made are never copied from, and a damaged filesystem's directory
/// loops end at the walk's depth limit.
struct ShellTreeCopy {
    let c: ShellContext
    let recursive: Bool
    let preserve: Bool

    init(_ c: ShellContext, recursive: Bool, preserve: Bool) {
        self.c = c; self.recursive = recursive; self.preserve = preserve
    }

    /// What one copy has made so far.
    private struct State {
        /// The directories this copy created, never copied from.
        var created = Set<GuestNode>()
        /// Sources with several links, and their copies (cp-a).
        var linked: [GuestNode: GuestNode] = [:]
    }

    func run(_ sourcePath: String, _ destinationPath: String) throws {
        let tree = try c.mounted()
        // cp follows a symlink named on its command line; cp -r and cp -a (-P) do not.
        let source = try ShellBuiltin.resolve(tree, sourcePath, follow: !recursive)
        let info = try tree.attributes(source)
        if info.isDirectory && !recursive { throw ShellError("\(sourcePath): Is a directory (cp-r or cp-a copies directories)") }
        guard let name = MountTree.components(sourcePath).last, name != [0x2E], name != [0x2E, 0x2E] else {
            throw ShellError("\(sourcePath): name the directory itself, not / or . or ..")
        }
        let place = try ShellBuiltin.destination(c, destinationPath, for: name)
        if info.isDirectory && place.isWithin(source) {
            throw ShellError("\(sourcePath): cannot copy a directory into itself (\(place.path))")
        }
        var state = State()
        try copy(source, info, sourcePath, to: place, &state, depth: 0)
    }

    private func copy(_ node: GuestNode, _ info: NodeAttributes, _ sourcePath: String, to place: ShellPlace,
                      _ state: inout State, depth: Int) throws {
        let tree = place.tree
        let fs = try place.filesystem(c)
        let existing = try place.existing()
        if let existing, existing == node { throw ShellError("'\(sourcePath)' and '\(place.path)' are the same file") }
        let existingInfo = try existing.map { try tree.attributes($0) }
        if let existing, let existingInfo, !existingInfo.isDirectory || info.type != .directory {
            if existingInfo.isDirectory { throw ShellError("\(place.path): cannot overwrite directory with non-directory") }
            if info.isDirectory { throw ShellError("\(place.path): cannot overwrite non-directory with directory") }
            // A regular file is written in place (cp keeps the target's inode); anything else
            // at the name is replaced.
            if !(existingInfo.isRegular && info.isRegular) {
                try place.refuseMountpoint(existing)
                try ShellBuiltin.call(place.path) { try fs.unlink(in: place.dir.inode, name: place.name) }
            }
        }
        let made: GuestNode
        switch info.type {
        case .directory:
            if let existing, existingInfo?.isDirectory == true {
                made = existing
            } else {
                let inode = try ShellBuiltin.call(place.path) {
                    // cp-a creates it owner-only and sets the real mode once the contents are in.
                    let mode = preserve ? 0o700 : UInt16(info.permissions) & ~c.umask & 0o7777
                    return try fs.makeDirectory(in: place.dir.inode, name: place.name, NewInode(mode: mode, uid: 0, gid: 0))
                }
                made = GuestNode(mount: place.dir.mount, inode: inode)
                state.created.insert(made)
            }
            guard depth < DirectoryWalkPath.maxDepth else { throw ShellError(DirectoryWalkPath.depthWarning(path: sourcePath)) }
            let children = try ShellBuiltin.call(sourcePath) { try tree.entries(node, rejected: { _ in }) }
            for child in children where child.name != [0x2E] && child.name != [0x2E, 0x2E] && !state.created.contains(child.node) {
                let name = String(decoding: child.name, as: UTF8.self)
                let childPath = sourcePath.hasSuffix("/") ? sourcePath + name : sourcePath + "/" + name
                let childInfo = try ShellBuiltin.call(childPath) { try tree.attributes(child.node) }
                // (The ancestry is only asked of the copy's top, in `run`.)
                let childPlace = ShellPlace(tree: tree, path: place.path + "/" + name, dir: made, name: child.name, ancestry: [])
                try copy(child.node, childInfo, childPath, to: childPlace, &state, depth: depth + 1)
            }
        case .regular:
            if preserve, info.links > 1, let first = state.linked[node], first.mount == place.dir.mount {
                if existing != nil { try ShellBuiltin.call(place.path) { try fs.unlink(in: place.dir.inode, name: place.name) } }
                try ShellBuiltin.call(place.path) { try fs.link(first.inode, into: place.dir.inode, name: place.name) }
                return
            }
            let target: UInt64
            if let existing, existingInfo?.isRegular == true {
                target = existing.inode
                try ShellBuiltin.call(place.path) { try fs.truncate(target, to: 0) }
            } else {
                target = try create(place, fs, info)
            }
            made = GuestNode(mount: place.dir.mount, inode: target)
            try copyData(node, size: info.size, sourcePath, to: fs, target, place.path)
            if preserve && info.links > 1 { state.linked[node] = made }
        case .symlink:
            let link = try ShellBuiltin.call(sourcePath) { try tree.filesystem(of: node).readlink(node.inode) }
            let inode = try ShellBuiltin.call(place.path) {
                try fs.makeSymlink(in: place.dir.inode, name: place.name, target: link,
                                   uid: preserve ? info.uid : 0, gid: preserve ? info.gid : 0)
            }
            made = GuestNode(mount: place.dir.mount, inode: inode)
        default:
            made = GuestNode(mount: place.dir.mount, inode: try create(place, fs, info))
        }
        if preserve { try keepAttributes(of: node, info, sourcePath, on: fs, made.inode, place.path) }
    }

    /// A new non-directory for `info` at `place`: cp-a's with the exact mode and owner (the
    /// xattrs, ACLs among them, follow), cp's with the mode less the umask (or as the default
    /// ACL makes it), owned by root.
    private func create(_ place: ShellPlace, _ fs: any WritableGuestFilesystem, _ info: NodeAttributes) throws -> UInt64 {
        try ShellBuiltin.call(place.path) {
            let typeBits = UInt16(truncatingIfNeeded: info.type.modeBits)
            let bits = UInt16(truncatingIfNeeded: info.permissions)
            if preserve {
                let spec = NewInode(mode: typeBits | bits, uid: info.uid, gid: info.gid, rdevMajor: info.rdevMajor, rdevMinor: info.rdevMinor)
                return try fs.createNode(in: place.dir.inode, name: place.name, spec)
            }
            let inherited = try fs.inheritedACL(directory: place.dir.inode, mode: typeBits | bits, umask: c.umask)
            let spec = NewInode(mode: inherited.mode, uid: 0, gid: 0, rdevMajor: info.rdevMajor, rdevMinor: info.rdevMinor)
            let node = try fs.createNode(in: place.dir.inode, name: place.name, spec)
            try fs.applyInheritedACL(node, inherited)
            return node
        }
    }

    /// The source's data ranges copied (holes left as holes), then the size set.
    private func copyData(_ node: GuestNode, size: UInt64, _ sourcePath: String, to fs: any WritableGuestFilesystem,
                          _ target: UInt64, _ targetPath: String) throws {
        let tree = try c.mounted()
        let file = try ShellBuiltin.call(sourcePath) { try tree.filesystem(of: node).openFile(node.inode) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        for range in try ShellBuiltin.call(sourcePath, { try file.dataRanges() }) {
            // The ranges come from the image: each is clamped to the file's size.
            var offset = min(range.offset, size)
            let (sum, overflow) = range.offset.addingReportingOverflow(range.length)
            let end = overflow ? size : min(sum, size)
            while offset < end {
                let want = Int(min(UInt64(buffer.count), end - offset))
                let n = try ShellBuiltin.call(sourcePath) { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset) }
                if n == 0 { break }
                try ShellBuiltin.writeAll(UnsafeRawBufferPointer(rebasing: buffer[..<n]), to: fs, target, at: offset, targetPath)
                offset += UInt64(n)
            }
        }
        try ShellBuiltin.call(targetPath) { try fs.truncate(target, to: size) }
    }

    /// cp -a's --preserve=all: the xattrs (ACLs and security labels among them), the owner, the
    /// exact mode, then the times, last, since every other change sets the ctime and mtime.
    private func keepAttributes(of node: GuestNode, _ info: NodeAttributes, _ sourcePath: String,
                                on fs: any WritableGuestFilesystem, _ target: UInt64, _ targetPath: String) throws {
        let tree = try c.mounted()
        let xattrs = try ShellBuiltin.call(sourcePath) { try tree.filesystem(of: node).xattrs(node.inode) }
        try ShellBuiltin.call(targetPath) {
            for x in xattrs { try fs.setXattr(target, name: x.name, value: x.value, mode: .createOrReplace) }
            var changes = AttributeChanges(uid: info.uid, gid: info.gid, accessTime: .at(info.atime), modificationTime: .at(info.mtime))
            // A symlink's mode is always 0777; chmod would follow it.
            if !info.isSymlink { changes.mode = UInt16(truncatingIfNeeded: info.permissions) }
            try fs.setAttributes(target, changes)
        }
    }
}
