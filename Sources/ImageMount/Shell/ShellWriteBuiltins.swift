import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The shell's commands that change the guest, with guestfs(3)'s semantics: the daemon runs
/// them as root with umask 022 (the `umask` command changes it), so a new file is 0644 and a
/// new directory 0755 owned by 0:0, unless the directory's default ACL says otherwise. On a
/// shell opened without --rw, or below a filesystem mounted with mount-ro, each fails with
/// EROFS, as the daemon's call would on a read-only mount.
extension ShellBuiltin {
    static let writing: [ShellBuiltin] = [
        .init(name: "write", arguments: 2...2, usage: "write path content", summary: "create a file, or replace its content, with the string given") { c, a in
            try writeFile(c, a[0], Array(a[1].utf8), append: false)
        },
        .init(name: "write-append", arguments: 2...2, usage: "write-append path content", summary: "append the string to a file (created if missing)") { c, a in
            try writeFile(c, a[0], Array(a[1].utf8), append: true)
        },
        .init(name: "touch", arguments: 1...1, usage: "touch path", summary: "create an empty file, or set an existing one's times to now") { c, a in
            let place = try ShellPlace(c, a[0])
            if let node = try place.existingFollowed() {
                let fs = try writable(c, place.tree, node, a[0])
                // guestfs_touch: "only works on regular files".
                guard try place.tree.attributes(node).isRegular else { throw ShellError("\(a[0]): not a regular file") }
                try call(a[0]) { try fs.setAttributes(node.inode, AttributeChanges(accessTime: .now, modificationTime: .now)) }
            } else {
                _ = try createRegular(c, place, mode: 0o666)
            }
        },
        .init(name: "truncate", arguments: 1...1, usage: "truncate path", summary: "truncate a file to zero length") { c, a in
            try truncate(c, a[0], "0")
        },
        .init(name: "truncate-size", arguments: 2...2, usage: "truncate-size path size", summary: "truncate or extend a file to the size (extending leaves a hole)") { c, a in
            try truncate(c, a[0], a[1])
        },
        .init(name: "mkdir", arguments: 1...1, usage: "mkdir path", summary: "create a directory") { c, a in
            try makeDirectory(ShellPlace(c, a[0]), c, mode: 0o777)
        },
        .init(name: "mkdir-mode", arguments: 2...2, usage: "mkdir-mode path mode", summary: "create a directory with the mode (less the umask)") { c, a in
            try makeDirectory(ShellPlace(c, a[0]), c, mode: UInt16(truncatingIfNeeded: integer(a[1], "mode")) & 0o7777)
        },
        .init(name: "mkdir-p", arguments: 1...1, usage: "mkdir-p path", summary: "create a directory and its missing parents (no error if it exists)") { c, a in
            let tree = try c.mounted()
            var path = ""
            for component in MountTree.components(try absolute(a[0])) {
                path += "/" + String(decoding: component, as: UTF8.self)
                let place = try ShellPlace(c, path)
                if let node = try place.existingFollowed() {
                    guard try tree.attributes(node).isDirectory else { throw ShellError("\(path): Not a directory") }
                    continue
                }
                try makeDirectory(place, c, mode: 0o777)
            }
        },
        .init(name: "rm", arguments: 1...1, usage: "rm path", summary: "remove a file (not a directory)") { c, a in
            try removeFile(c, a[0], missingOK: false)
        },
        .init(name: "rm-f", arguments: 1...1, usage: "rm-f path", summary: "remove a file, no error if it is missing (not a directory)") { c, a in
            try removeFile(c, a[0], missingOK: true)
        },
        .init(name: "rm-rf", arguments: 1...1, usage: "rm-rf path", summary: "remove a file or a directory and everything below it, no error if missing") { c, a in
            guard try exists(c, a[0]) else { return }
            let place = try ShellPlace(c, a[0])
            guard let node = try place.existing() else { return }
            try place.refuseMountpoint(node)
            let fs = try place.filesystem(c)
            if try place.tree.attributes(node).isDirectory {
                var seen = Set<UInt64>()
                try removeContents(of: node.inode, fs, path: a[0], seen: &seen, depth: 0)
                try call(a[0]) { try fs.removeDirectory(in: place.dir.inode, name: place.name) }
            } else {
                try call(a[0]) { try fs.unlink(in: place.dir.inode, name: place.name) }
            }
        },
        .init(name: "rmdir", arguments: 1...1, usage: "rmdir path", summary: "remove an empty directory") { c, a in
            let place = try ShellPlace(c, a[0])
            guard let node = try place.existing() else { throw ShellError("\(a[0]): No such file or directory") }
            try place.refuseMountpoint(node)
            guard try place.tree.attributes(node).isDirectory else { throw ShellError("\(a[0]): Not a directory") }
            let fs = try place.filesystem(c)
            try call(a[0]) { try fs.removeDirectory(in: place.dir.inode, name: place.name) }
        },
        .init(name: "mv", arguments: 2...2, usage: "mv src dest", summary: "move or rename a file or directory (into dest when it is a directory)") { c, a in
            let source = try ShellPlace(c, a[0])
            guard let node = try source.existing() else { throw ShellError("\(a[0]): No such file or directory") }
            try source.refuseMountpoint(node)
            let target = try destination(c, a[1], for: source.name)
            if let existing = try target.existing(), existing == node { return }
            // The kernel's VFS refuses this before any filesystem sees it (EINVAL): renamed, the
            // directory would hang below itself, cut off from the root.
            if try source.tree.attributes(node).isDirectory && target.isWithin(node) {
                throw ShellError("\(a[1]): Invalid argument (cannot move a directory into itself)")
            }
            guard target.dir.mount == source.dir.mount else {
                throw ShellError("\(a[1]): Invalid cross-device link (source and destination are on different filesystems)")
            }
            let fs = try source.filesystem(c)
            try call(a[1]) { try fs.rename(from: source.dir.inode, source.name, to: target.dir.inode, target.name, flags: []) }
        },
        .init(name: "cp", arguments: 2...2, usage: "cp src dest", summary: "copy a file (into dest when it is a directory)") { c, a in
            try ShellTreeCopy(c, recursive: false, preserve: false).run(a[0], a[1])
        },
        .init(name: "cp-a", arguments: 2...2, usage: "cp-a src dest", summary: "copy a file or directory recursively, keeping modes, owners, times, links and xattrs (cp -a)") { c, a in
            try ShellTreeCopy(c, recursive: true, preserve: true).run(a[0], a[1])
        },
        .init(name: "cp-r", arguments: 2...2, usage: "cp-r src dest", summary: "copy a file or directory recursively (cp -rP)") { c, a in
            try ShellTreeCopy(c, recursive: true, preserve: false).run(a[0], a[1])
        },
        .init(name: "ln", arguments: 2...2, usage: "ln target linkname", summary: "make a hard link") { c, a in
            try hardLink(c, a[0], a[1], force: false)
        },
        .init(name: "ln-f", arguments: 2...2, usage: "ln-f target linkname", summary: "make a hard link, replacing what is at linkname") { c, a in
            try hardLink(c, a[0], a[1], force: true)
        },
        .init(name: "ln-s", arguments: 2...2, usage: "ln-s target linkname", summary: "make a symbolic link") { c, a in
            try symbolicLink(c, a[0], a[1], force: false)
        },
        .init(name: "ln-sf", arguments: 2...2, usage: "ln-sf target linkname", summary: "make a symbolic link, replacing what is at linkname") { c, a in
            try symbolicLink(c, a[0], a[1], force: true)
        },
        .init(name: "chmod", arguments: 2...2, usage: "chmod mode path", summary: "change the permission bits (a leading 0 makes the mode octal)") { c, a in
            let mode = UInt16(truncatingIfNeeded: try integer(a[0], "mode")) & 0o7777
            try changeAttributes(c, a[1], follow: true, AttributeChanges(mode: mode))
        },
        .init(name: "chown", arguments: 3...3, usage: "chown owner group path", summary: "change the owner and group (numbers; -1 keeps one; symlinks followed)") { c, a in
            try changeAttributes(c, a[2], follow: true, try ownership(a[0], a[1]))
        },
        .init(name: "lchown", arguments: 3...3, usage: "lchown owner group path", summary: "change the owner and group of the link itself") { c, a in
            try changeAttributes(c, a[2], follow: false, try ownership(a[0], a[1]))
        },
        .init(name: "setxattr", arguments: 4...4, usage: "setxattr xattr val vallen path", summary: "set an extended attribute (its first vallen bytes of val; symlinks followed)") { c, a in
            try setXattr(c, a, follow: true)
        },
        .init(name: "lsetxattr", arguments: 4...4, usage: "lsetxattr xattr val vallen path", summary: "set an extended attribute of the link itself") { c, a in
            try setXattr(c, a, follow: false)
        },
        .init(name: "removexattr", arguments: 2...2, usage: "removexattr xattr path", summary: "remove an extended attribute (symlinks followed)") { c, a in
            let (fs, node) = try writableNode(c, a[1], follow: true)
            try call(a[1]) { try fs.removeXattr(node.inode, name: a[0]) }
        },
        .init(name: "lremovexattr", arguments: 2...2, usage: "lremovexattr xattr path", summary: "remove an extended attribute of the link itself") { c, a in
            let (fs, node) = try writableNode(c, a[1], follow: false)
            try call(a[1]) { try fs.removeXattr(node.inode, name: a[0]) }
        },
        .init(name: "edit", arguments: 1...3, usage: "edit [-e expr] path", summary: "edit a file with $EDITOR, or with a Perl expression (-e, as virt-edit -e); vi and emacs are the same") { c, a in
            try edit(c, a)
        },
        .init(name: "vi", arguments: 1...3, usage: "vi [-e expr] path", summary: "the same as edit") { c, a in
            try edit(c, a)
        },
        .init(name: "emacs", arguments: 1...3, usage: "emacs [-e expr] path", summary: "the same as edit") { c, a in
            try edit(c, a)
        },
        .init(name: "sync", arguments: 0...0, usage: "sync", summary: "write everything changed so far to the image") { c, _ in
            try c.sync()
        },
        .init(name: "umask", arguments: 1...1, usage: "umask mask", summary: "set the umask for the files and directories made next; prints the old one") { c, a in
            let mask = try integer(a[0], "mask")
            guard (0...0o777).contains(mask) else { throw ShellError("\(a[0]): the mask must be between 0 and 0777") }
            // guestfish prints the int the call returns, in decimal.
            try c.print(String(c.umask))
            c.umask = UInt16(mask)
        },
    ]

    // MARK: Helpers

    /// Whether the path names something (its last symlink not followed): rm -f and rm -rf
    /// ignore a missing one, and a missing directory on the way there.
    static func exists(_ c: ShellContext, _ path: String) throws -> Bool {
        let tree = try c.mounted()
        return (try? tree.resolve(absolute(path), followFinal: false)) != nil
    }

    /// An error of the layers below, in the daemon's words, for `path`.
    static func call<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as ShellError { throw e } catch {
            throw ShellError(ShellError.describe(error, path: path))
        }
    }

    /// The filesystem `node` lies on, refused with EROFS when it is mounted read-only.
    static func writable(_ c: ShellContext, _ tree: MountTree, _ node: GuestNode, _ path: String) throws -> any WritableGuestFilesystem {
        guard !tree.isReadOnly(node) else {
            throw ShellError("\(path): Read-only file system" + (c.writable ? "" : " (the shell opened the images read-only: give --rw to write)"))
        }
        return try call(path) { try tree.writableFilesystem(of: node) }
    }

    static func writableNode(_ c: ShellContext, _ path: String, follow: Bool) throws -> (any WritableGuestFilesystem, GuestNode) {
        let tree = try c.mounted()
        let node = try resolve(tree, path, follow: follow)
        return (try writable(c, tree, node, path), node)
    }

    /// guestfish reads integer arguments as C's strtol with base 0 does: 0755 is octal, 0x1ed
    /// hexadecimal, 493 decimal, with an optional sign.
    static func integer(_ text: String, _ what: String) throws -> Int64 {
        var digits = Substring(text)
        var negative = false
        if let sign = digits.first, sign == "-" || sign == "+" { negative = sign == "-"; digits = digits.dropFirst() }
        var radix = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { radix = 16; digits = digits.dropFirst(2) }
        else if digits.count > 1 && digits.hasPrefix("0") { radix = 8; digits = digits.dropFirst() }
        guard let first = digits.first, first != "-", first != "+", let value = Int64(digits, radix: radix) else {
            throw ShellError("\(text): the \(what) must be an integer (a leading 0 for octal, 0x for hexadecimal)")
        }
        return negative ? -value : value
    }

    /// A new regular file at `place`, `mode` less the umask (or as the directory's default ACL
    /// makes it), owned by root as the daemon's files are.
    static func createRegular(_ c: ShellContext, _ place: ShellPlace, mode: UInt16) throws -> (any WritableGuestFilesystem, UInt64) {
        let fs = try place.filesystem(c)
        let requested = UInt16(NodeType.regular.modeBits) | (mode & 0o7777)
        let node = try call(place.path) {
            let inherited = try fs.inheritedACL(directory: place.dir.inode, mode: requested, umask: c.umask)
            let node = try fs.createNode(in: place.dir.inode, name: place.name, NewInode(mode: inherited.mode, uid: 0, gid: 0))
            try fs.applyInheritedACL(node, inherited)
            return node
        }
        return (fs, node)
    }

    static func makeDirectory(_ place: ShellPlace, _ c: ShellContext, mode: UInt16) throws {
        let fs = try place.filesystem(c)
        if try place.existing() != nil { throw ShellError("\(place.path): File exists") }
        try call(place.path) {
            let requested = UInt16(NodeType.directory.modeBits) | (mode & 0o7777)
            let inherited = try fs.inheritedACL(directory: place.dir.inode, mode: requested, umask: c.umask)
            let node = try fs.makeDirectory(in: place.dir.inode, name: place.name, NewInode(mode: inherited.mode & 0o7777, uid: 0, gid: 0))
            try fs.applyInheritedACL(node, inherited)
        }
    }

    /// The file at `path` opened as open(2) with O_CREAT (and O_TRUNC unless appending) would
    /// open it: an existing one followed through symlinks, else a new one.
    static func openForWriting(_ c: ShellContext, _ path: String, append: Bool) throws -> (fs: any WritableGuestFilesystem, node: UInt64, offset: UInt64) {
        let place = try ShellPlace(c, path)
        if let node = try place.existingFollowed() {
            let info = try place.tree.attributes(node)
            if info.isDirectory { throw ShellError("\(path): Is a directory") }
            guard info.isRegular else { throw ShellError("\(path): not a regular file") }
            let fs = try writable(c, place.tree, node, path)
            if append { return (fs, node.inode, info.size) }
            try call(path) { try fs.truncate(node.inode, to: 0) }
            return (fs, node.inode, 0)
        }
        let (fs, node) = try createRegular(c, place, mode: 0o666)
        return (fs, node, 0)
    }

    static func writeFile(_ c: ShellContext, _ path: String, _ data: [UInt8], append: Bool) throws {
        let (fs, node, start) = try openForWriting(c, path, append: append)
        try data.withUnsafeBytes { try writeAll($0, to: fs, node, at: start, path) }
    }

    /// All of `bytes` written to guest file `node` from `offset` on (a driver may write less
    /// than asked; one that writes nothing is out of space).
    static func writeAll(_ bytes: UnsafeRawBufferPointer, to fs: any WritableGuestFilesystem, _ node: UInt64,
                         at offset: UInt64, _ path: String) throws {
        var done = 0
        while done < bytes.count {
            // `offset` may be an image's file size (write-append): checked, not trusted.
            let (at, overflow) = offset.addingReportingOverflow(UInt64(done))
            guard !overflow else { throw ShellError("\(path): File too large") }
            let n = try call(path) { try fs.write(node, at: at, UnsafeRawBufferPointer(rebasing: bytes[done...])) }
            guard n > 0 else { throw ShellError("\(path): No space left on device") }
            done += n
        }
    }

    /// A host file created (or truncated) for download and find0. The path is the user's word,
    /// not the guest's; the sandbox lets it be made only in a directory the script's own line
    /// named (ShellHostAccess).
    static func createHostFile(_ path: String) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(path, .writeOnly, options: [.create, .truncate, .closeOnExec],
                                           permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch let e as Errno {
            throw ShellError("\(path): \(e.description)")
        }
    }

    static func truncate(_ c: ShellContext, _ path: String, _ sizeText: String) throws {
        let size = try integer(sizeText, "size")
        guard size >= 0 else { throw ShellError("\(sizeText): the size must not be negative") }
        let (fs, node) = try writableNode(c, path, follow: true)
        let info = try c.mounted().attributes(node)
        if info.isDirectory { throw ShellError("\(path): Is a directory") }
        guard info.isRegular else { throw ShellError("\(path): Invalid argument") }
        try call(path) { try fs.truncate(node.inode, to: UInt64(size)) }
    }

    static func removeFile(_ c: ShellContext, _ path: String, missingOK: Bool) throws {
        if missingOK, try !exists(c, path) { return }
        let place = try ShellPlace(c, path)
        guard let node = try place.existing() else {
            if missingOK { return }
            throw ShellError("\(path): No such file or directory")
        }
        try place.refuseMountpoint(node)
        if try place.tree.attributes(node).isDirectory { throw ShellError("\(path): Is a directory") }
        let fs = try place.filesystem(c)
        try call(path) { try fs.unlink(in: place.dir.inode, name: place.name) }
    }

    /// Empties directory `dir` of filesystem `fs` (rm -rf): files unlinked, directories emptied
    /// and removed, depth first. A directory met twice (a hard-linked directory of a damaged
    /// filesystem) or nested past the walk's depth limit stops it with an error.
    static func removeContents(of dir: UInt64, _ fs: any WritableGuestFilesystem, path: String, seen: inout Set<UInt64>, depth: Int) throws {
        guard seen.insert(dir).inserted else { throw ShellError("\(path): directory loop in the filesystem; not removed") }
        guard depth < DirectoryWalkPath.maxDepth else { throw ShellError(DirectoryWalkPath.depthWarning(path: path)) }
        for entry in try call(path, { try fs.entries(dir) }) {
            let child = path == "/" ? "/" + String(decoding: entry.name, as: UTF8.self) : path + "/" + String(decoding: entry.name, as: UTF8.self)
            let type = entry.type == .unknown ? try call(child) { try fs.attributes(entry.node).type } : entry.type
            if type == .directory {
                try removeContents(of: entry.node, fs, path: child, seen: &seen, depth: depth + 1)
                try call(child) { try fs.removeDirectory(in: dir, name: entry.name) }
            } else {
                try call(child) { try fs.unlink(in: dir, name: entry.name) }
            }
        }
    }

    /// Where `mv`, `cp` and `ln` put something called `name`: into `path` when it names a
    /// directory (symlinks followed), else at `path` itself.
    static func destination(_ c: ShellContext, _ path: String, for name: [UInt8]) throws -> ShellPlace {
        let tree = try c.mounted()
        let absolutePath = try absolute(path)
        if let ancestry = try? tree.chain(absolutePath), let node = ancestry.last, try tree.attributes(node).isDirectory {
            return ShellPlace(tree: tree, path: (absolutePath == "/" ? "" : absolutePath) + "/" + String(decoding: name, as: UTF8.self),
                              dir: node, name: name, ancestry: ancestry)
        }
        return try ShellPlace(c, path)
    }

    static func hardLink(_ c: ShellContext, _ targetPath: String, _ linkPath: String, force: Bool) throws {
        let tree = try c.mounted()
        // link(2) does not follow a symlink: the link itself gets the new name.
        let target = try resolve(tree, targetPath, follow: false)
        if try tree.attributes(target).isDirectory { throw ShellError("\(targetPath): hard link not allowed for directory") }
        let place = try destination(c, linkPath, for: MountTree.components(targetPath).last ?? [])
        let fs = try place.filesystem(c)
        guard target.mount == place.dir.mount else { throw ShellError("\(linkPath): Invalid cross-device link") }
        if let existing = try place.existing() {
            if existing == target { return }
            guard force else { throw ShellError("\(place.path): File exists") }
            try place.refuseMountpoint(existing)
            if try tree.attributes(existing).isDirectory { throw ShellError("\(place.path): Is a directory") }
            try call(place.path) { try fs.unlink(in: place.dir.inode, name: place.name) }
        }
        try call(place.path) { try fs.link(target.inode, into: place.dir.inode, name: place.name) }
    }

    static func symbolicLink(_ c: ShellContext, _ target: String, _ linkPath: String, force: Bool) throws {
        let place = try destination(c, linkPath, for: MountTree.components(target).last ?? [])
        let fs = try place.filesystem(c)
        if let existing = try place.existing() {
            guard force else { throw ShellError("\(place.path): File exists") }
            try place.refuseMountpoint(existing)
            if try place.tree.attributes(existing).isDirectory { throw ShellError("\(place.path): Is a directory") }
            try call(place.path) { try fs.unlink(in: place.dir.inode, name: place.name) }
        }
        _ = try call(place.path) { try fs.makeSymlink(in: place.dir.inode, name: place.name, target: Array(target.utf8), uid: 0, gid: 0) }
    }

    /// guestfish's edit (a copy in $EDITOR, written back when it changed), or virt-edit -e's
    /// Perl expression: the new content goes to a new file renamed over the old one, its
    /// owner, mode and xattrs kept (FileEdit, as the edit command does it).
    static func edit(_ c: ShellContext, _ a: [String]) throws {
        let (expression, path): (String?, String)
        switch a.count {
        case 1: (expression, path) = (nil, a[0])
        case 3 where a[0] == "-e": (expression, path) = (a[1], a[2])
        default: throw ShellError("usage: edit [-e expr] path")
        }
        let tree = try c.mounted()
        // Refused where nothing may be written, before the editor is started.
        _ = try writableNode(c, path, follow: false)
        guard let agent = c.editor else { throw ShellError("\(path): the editor helper is not running") }
        try call(path) { try FileEdit(file: try absolute(path), expression: expression, backupExtension: nil, agent: agent).edit(tree) }
    }

    static func ownership(_ owner: String, _ group: String) throws -> AttributeChanges {
        let uid = try integer(owner, "owner"), gid = try integer(group, "group")
        // chown(2): -1 leaves that id as it is.
        func id(_ value: Int64, _ text: String) throws -> UInt32? {
            if value == -1 { return nil }
            guard let v = UInt32(exactly: value), v != UInt32.max else { throw ShellError("\(text): not a valid id") }
            return v
        }
        return AttributeChanges(uid: try id(uid, owner), gid: try id(gid, group))
    }

    static func changeAttributes(_ c: ShellContext, _ path: String, follow: Bool, _ changes: AttributeChanges) throws {
        let (fs, node) = try writableNode(c, path, follow: follow)
        try call(path) { try fs.setAttributes(node.inode, changes) }
    }

    static func setXattr(_ c: ShellContext, _ a: [String], follow: Bool) throws {
        let value = Array(a[1].utf8)
        let length = try integer(a[2], "vallen")
        guard length >= 0, length <= value.count else {
            throw ShellError("\(a[2]): vallen must be between 0 and the value's length (\(value.count))")
        }
        let (fs, node) = try writableNode(c, a[3], follow: follow)
        try call(a[3]) { try fs.setXattr(node.inode, name: a[0], value: Array(value.prefix(Int(length))), mode: .createOrReplace) }
    }
}

/// A path about to be created, replaced or removed: the directory it is in (the symlinks on
/// the way there followed) and its final name, which is not followed.
struct ShellPlace {
    let tree: MountTree
    let path: String
    let dir: GuestNode
    let name: [UInt8]
    /// `dir` and the directories above it, from `/` (MountTree.chain).
    let ancestry: [GuestNode]

    init(tree: MountTree, path: String, dir: GuestNode, name: [UInt8], ancestry: [GuestNode]) {
        self.tree = tree; self.path = path; self.dir = dir; self.name = name; self.ancestry = ancestry
    }

    init(_ c: ShellContext, _ path: String) throws {
        let tree = try c.mounted()
        let components = MountTree.components(try ShellBuiltin.absolute(path))
        // "/" itself is a mountpoint: nothing can replace or remove it.
        guard let name = components.last else { throw ShellError("\(path): Device or resource busy") }
        guard name != [0x2E] && name != [0x2E, 0x2E] else { throw ShellError("\(path): Invalid argument") }
        let parentPath = "/" + components.dropLast().map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
        let ancestry = try ShellBuiltin.call(path) { try tree.chain(parentPath) }
        guard let dir = ancestry.last, try tree.attributes(dir).isDirectory else { throw ShellError("\(path): Not a directory") }
        self.init(tree: tree, path: path, dir: dir, name: name, ancestry: ancestry)
    }

    /// Whether the place lies in directory `node` or below it: moving or copying `node` here
    /// would put a directory inside itself (rename(2)'s EINVAL; cp's "into itself").
    func isWithin(_ node: GuestNode) -> Bool { ancestry.contains(node) }

    /// The node at the name itself, nil when there is none.
    func existing() throws -> GuestNode? {
        try ShellBuiltin.call(path) { try tree.lookup(dir, name) }
    }

    /// The node the name leads to, its symlinks followed; nil when it does not exist (a
    /// dangling symlink included).
    func existingFollowed() throws -> GuestNode? {
        guard try existing() != nil else { return nil }
        return try? tree.resolve(path)
    }

    /// The directory's filesystem, writable.
    func filesystem(_ c: ShellContext) throws -> any WritableGuestFilesystem {
        try ShellBuiltin.writable(c, tree, dir, path)
    }

    /// A mounted filesystem's root cannot be removed or renamed (EBUSY).
    func refuseMountpoint(_ node: GuestNode) throws {
        if node.mount != dir.mount { throw ShellError("\(path): Device or resource busy") }
    }
}
