import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// The three listings libguestfs makes of a directory, over one mounted tree: `guestfs_ls`
/// (names), `guestfs_ll` (`ls -la`, LongListing.swift) and `guestfs_find` (every path below,
/// relative). virt-ls (`LsCommand`) and the shell's ls, ll and find print them.
struct GuestListing {
    let tree: MountTree
    /// For ll's dates: "Mon dd HH:MM" within six months of this, "Mon dd  YYYY" otherwise.
    let now: Int64

    /// Guards the walks against directory cycles that a damaged filesystem could contain.
    static let maxDepth = 4096

    /// A directory's names, sorted bytewise, without "." and "..".
    func sortedEntries(_ dir: GuestNode) throws -> [(name: [UInt8], node: GuestNode)] {
        try tree.entries(dir) { Diagnostics.warn($0.message) }
            .filter { $0.name != [0x2E] && $0.name != [0x2E, 0x2E] }
            .map { ($0.name, $0.node) }
            .sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    func directory(_ path: String) throws -> GuestNode {
        let node = try tree.resolve(path)
        guard try tree.attributes(node).isDirectory else {
            throw ImageError(structure: path, reason: "not a directory", errno: .notDirectory)
        }
        return node
    }

    /// virt-ls and the shell's ls: `guestfs_ls`.
    func names(_ path: String, into out: inout OutputBuffer) throws {
        for entry in try sortedEntries(directory(path)) {
            out.append(entry.name)
            try out.endLine()
        }
    }

    /// virt-ls -l: `guestfs_ll`, that is `ls -la`. A path that is not a directory (or is a
    /// symbolic link) is listed on its own, as ls lists a file named on its command line.
    func longListing(_ path: String, into out: inout OutputBuffer) throws {
        let node = try tree.resolve(path, followFinal: false)
        let inode = try tree.attributes(node)
        guard inode.isDirectory else {
            try LongListing(entries: [entry(Array(path.utf8), node, inode)], withTotal: false, now: now).render(into: &out)
            return
        }
        var entries = [try entry([0x2E], node, inode)]
        let parent = try tree.resolve(path + "/..")
        entries.append(try entry([0x2E, 0x2E], parent, tree.attributes(parent)))
        for child in try sortedEntries(node) {
            entries.append(try entry(child.name, child.node, tree.attributes(child.node)))
        }
        entries.sort { $0.name.lexicographicallyPrecedes($1.name) }
        try LongListing(entries: entries, withTotal: true, now: now).render(into: &out)
    }

    private func entry(_ name: [UInt8], _ node: GuestNode, _ inode: NodeAttributes) throws -> LongListing.Entry {
        LongListing.Entry(name: name, inode: inode,
                          linkTarget: inode.isSymlink ? try tree.filesystem(of: node).readlink(node.inode) : nil)
    }

    /// virt-ls -R: `guestfs_find`, every path below the directory relative to it, sorted
    /// bytewise as a whole. Mounted filesystems are crossed; symbolic links are not followed.
    /// Each name relative to `path`, sorted, one a line (guestfs_find), or each ended by a NUL
    /// with `terminator` 0 (guestfs_find0).
    func find(_ path: String, into out: inout OutputBuffer, terminator: UInt8 = 0x0A) throws {
        var found: [[UInt8]] = []
        let top = try directory(path)
        var ancestors = DirectoryWalkPath(top: top)
        func walk(_ dir: GuestNode, prefix: [UInt8], depth: Int) throws {
            guard depth < Self.maxDepth else {
                throw ImageError(structure: path, reason: "directories nested too deep (a loop in the filesystem?)", errno: .tooManySymbolicLinkLevels)
            }
            for child in try sortedEntries(dir) {
                let relative = prefix.isEmpty ? child.name : prefix + [0x2F] + child.name
                found.append(relative)
                if try tree.attributes(child.node).isDirectory {
                    guard ancestors.enter(child.node) else {
                        Diagnostics.warn(tree.loopWarning(path: String(decoding: relative, as: UTF8.self), node: child.node))
                        continue
                    }
                    try walk(child.node, prefix: relative, depth: depth + 1)
                    ancestors.leave(child.node)
                }
            }
        }
        try walk(top, prefix: [], depth: 0)
        found.sort { $0.lexicographicallyPrecedes($1) }
        for relative in found {
            out.append(relative)
            if terminator == 0x0A { try out.endLine() } else { out.append(byte: terminator) }
        }
    }
}
