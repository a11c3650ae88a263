import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS

/// A node of the guest's tree: a node of one of the mounted filesystems.
public struct GuestNode: Sendable, Hashable {
    /// Index into `MountTree.mounts`.
    public let mount: Int
    /// The node's id in its filesystem (GuestFilesystem).
    public let inode: UInt64
    public init(mount: Int, inode: UInt64) { self.mount = mount; self.inode = inode }
}

/// Several filesystems arranged as the guest would see them: `/` from one device, `/boot`
/// from another, and so on. Mounts are applied shortest mountpoint first; a mountpoint must be
/// a directory in the tree built so far, as for the kernel.
public final class MountTree: Sendable {
    public struct Mount: Sendable {
        public let mountpoint: String
        public let deviceName: String
        public let filesystem: any GuestFilesystem
        /// Where the mount is attached: the covered directory (nil for `/`).
        public let covers: GuestNode?
        public let coveredName: [UInt8]?
        /// Opened read-only although the tree is writable (`-m DEV:MP:ro`): every write under
        /// this mount is EROFS, as on a kernel mount with `-o ro`.
        public let readOnly: Bool
    }

    public let mounts: [Mount]
    /// (covered directory's parent, name) → mount index: a lookup of `name` in that directory lands on the mount.
    private let coverIndex: [CoverKey: Int]
    /// Mount index → the node that holds its mountpoint, for `..` out of a mount's root.
    private let parentOfRoot: [Int: GuestNode]

    private struct CoverKey: Hashable { let parent: GuestNode; let name: [UInt8] }

    /// One filesystem to mount: the device, where, whether read-only in a writable tree
    /// (guestmount's `-m DEV:MP:ro`), and the mount options its driver takes (vfat's umask=…).
    public struct Entry: Sendable {
        public let device: GuestDevice
        public let mountpoint: String
        public let readOnly: Bool
        public let options: [String]
        public init(device: GuestDevice, mountpoint: String, readOnly: Bool = false, options: [String] = []) {
            self.device = device; self.mountpoint = mountpoint; self.readOnly = readOnly; self.options = options
        }
    }

    /// Builds the tree. `entries` pairs devices and mountpoints; one must be `/`.
    /// With `skipFailed`, a mount other than `/` that fails is reported to it and left out
    /// (inspection: only a failing `/` is fatal); without it every failure throws.
    public convenience init(entries: [(device: GuestDevice, mountpoint: String)], writable: Bool,
                            skipFailed: ((ImageError) -> Void)? = nil) throws {
        try self.init(mounting: entries.map { Entry(device: $0.device, mountpoint: $0.mountpoint) }, writable: writable, skipFailed: skipFailed)
    }

    /// As above, with a per-entry `readOnly`: that filesystem is opened read-only even when
    /// `writable` is true (guestmount's `-m DEV:MP:ro`).
    public convenience init(entries: [(device: GuestDevice, mountpoint: String, readOnly: Bool)], writable: Bool,
                            skipFailed: ((ImageError) -> Void)? = nil) throws {
        try self.init(mounting: entries.map { Entry(device: $0.device, mountpoint: $0.mountpoint, readOnly: $0.readOnly) },
                      writable: writable, skipFailed: skipFailed)
    }

    public init(mounting entries: [Entry], writable: Bool, skipFailed: ((ImageError) -> Void)? = nil) throws {
        let sorted = entries.map { Entry(device: $0.device, mountpoint: Self.normalize($0.mountpoint), readOnly: $0.readOnly, options: $0.options) }
            .sorted { $0.mountpoint.split(separator: "/").count < $1.mountpoint.split(separator: "/").count }
        guard let first = sorted.first, first.mountpoint == "/" else {
            throw ImageError(structure: "mount", reason: "no filesystem is mounted on / (use -m DEVICE or -m DEVICE:/)",
                             errno: .invalidArgument)
        }
        var mounts: [Mount] = [], covers: [CoverKey: Int] = [:], parents: [Int: GuestNode] = [:]
        for entry in sorted {
            let mountpoint = entry.mountpoint
            if mounts.contains(where: { $0.mountpoint == mountpoint }) {
                throw ImageError(structure: "mount \(mountpoint)", reason: "two filesystems mounted on the same mountpoint",
                                 errno: .invalidArgument)
            }
            do {
                try Self.mount(entry.device, on: mountpoint, writable: writable && !entry.readOnly, options: entry.options,
                               into: &mounts, covers: &covers, parents: &parents)
            } catch let error as ImageError where mountpoint != "/" && skipFailed != nil {
                skipFailed?(error)
            }
        }
        self.mounts = mounts
        self.coverIndex = covers
        self.parentOfRoot = parents
    }

    /// Opens `device`'s filesystem and attaches it at `mountpoint` of the tree built so far.
    private static func mount(_ device: GuestDevice, on mountpoint: String, writable: Bool, options: [String],
                              into mounts: inout [Mount], covers: inout [CoverKey: Int], parents: inout [Int: GuestNode]) throws {
        let fs = try FilesystemRegistry.open(device, writable: writable, options: options)
        var covered: GuestNode? = nil, name: [UInt8]? = nil
        if mountpoint != "/" {
            let partial = MountTree(mounts: mounts, covers: covers, parents: parents)
            let components = mountpoint.split(separator: "/").map { Array($0.utf8) }
            let parentPath = "/" + mountpoint.split(separator: "/").dropLast().joined(separator: "/")
            let parent: GuestNode
            let target: GuestNode
            do {
                parent = try partial.resolve(parentPath)
                guard let t = try partial.lookup(parent, components.last ?? []) else {
                    throw ImageError(structure: "mountpoint \(mountpoint)", reason: "does not exist in the guest",
                                     errno: .noSuchFileOrDirectory)
                }
                target = t
            } catch let e as ImageError {
                throw ImageError(structure: "mount \(device.name) on \(mountpoint)", reason: e.reason, errno: e.errno)
            }
            guard try partial.attributes(target).isDirectory else {
                throw ImageError(structure: "mount \(device.name) on \(mountpoint)", reason: "mountpoint is not a directory",
                                 errno: .notDirectory)
            }
            covered = target
            name = components.last
            covers[CoverKey(parent: parent, name: components.last ?? [])] = mounts.count
            parents[mounts.count] = parent
        }
        mounts.append(Mount(mountpoint: mountpoint, deviceName: device.name, filesystem: fs, covers: covered,
                            coveredName: name, readOnly: !writable || !fs.isWritable))
    }

    private init(mounts: [Mount], covers: [CoverKey: Int], parents: [Int: GuestNode]) {
        self.mounts = mounts
        self.coverIndex = covers
        self.parentOfRoot = parents
    }

    public var root: GuestNode { rootNode(of: 0) }

    /// The root directory of mount `index`.
    public func rootNode(of index: Int) -> GuestNode { GuestNode(mount: index, inode: mounts[index].filesystem.rootNode) }

    /// Whether `node` is the root directory of its mount.
    public func isMountRoot(_ node: GuestNode) -> Bool { node.inode == mounts[node.mount].filesystem.rootNode }

    public func filesystem(of node: GuestNode) -> any GuestFilesystem { mounts[node.mount].filesystem }

    /// The filesystem of `node` for writing: EROFS when the tree or that mount is read-only.
    public func writableFilesystem(of node: GuestNode) throws -> any WritableGuestFilesystem {
        guard !mounts[node.mount].readOnly, let fs = mounts[node.mount].filesystem as? any WritableGuestFilesystem,
              fs.isWritable else {
            throw ImageError(path: mounts[node.mount].deviceName, reason: "mounted read-only", errno: .readOnlyFileSystem)
        }
        return fs
    }

    /// Whether `node` lives on a filesystem opened read-only (the whole tree, or its `-m …:ro`).
    public func isReadOnly(_ node: GuestNode) -> Bool { mounts[node.mount].readOnly }

    public func attributes(_ node: GuestNode) throws -> NodeAttributes { try filesystem(of: node).attributes(node.inode) }

    /// Looks `name` up in directory `dir`, crossing onto a mounted filesystem where one covers it.
    public func lookup(_ dir: GuestNode, _ name: [UInt8]) throws -> GuestNode? {
        if !coverIndex.isEmpty, let mount = coverIndex[CoverKey(parent: dir, name: name)] {
            return rootNode(of: mount)
        }
        guard let node = try filesystem(of: dir).lookup(dir.inode, name) else { return nil }
        return GuestNode(mount: dir.mount, inode: node)
    }

    /// The directory entries of `dir` as the guest sees them: an entry covered by a mount
    /// points at the mounted filesystem's root. Entries whose names cannot be a path component
    /// (`GuestName`) are left out and handed to `rejected`, which reports them.
    public func entries(_ dir: GuestNode, rejected: (RejectedName) -> Void) throws -> [(name: [UInt8], node: GuestNode, type: NodeType)] {
        var out: [(name: [UInt8], node: GuestNode, type: NodeType)] = []
        let listed = try filesystem(of: dir).entries(dir.inode)
        out.reserveCapacity(listed.count)
        // Most trees have no mount over anything: no name needs hashing to find out.
        let mayCover = !coverIndex.isEmpty
        for entry in listed {
            if let problem = GuestName.problem(entry.name) {
                rejected(RejectedName(directory: dir, device: mounts[dir.mount].deviceName, name: entry.name, problem: problem))
                continue
            }
            if mayCover, let mount = coverIndex[CoverKey(parent: dir, name: entry.name)] {
                out.append((entry.name, rootNode(of: mount), .directory))
            } else {
                out.append((entry.name, GuestNode(mount: dir.mount, inode: entry.node), entry.type))
            }
        }
        return out
    }

    /// Whether `name` in `dir` is a mountpoint (a mount covers it): such names cannot be
    /// removed or renamed (EBUSY).
    public func isMountpoint(_ dir: GuestNode, _ name: [UInt8]) -> Bool {
        coverIndex[CoverKey(parent: dir, name: name)] != nil
    }

    /// The parent of a mount's root directory, for `..`.
    public func parentOfMountRoot(_ mount: Int) -> GuestNode? { parentOfRoot[mount] }

    /// Resolves an absolute guest path. Symlinks in the middle are always followed (absolute
    /// ones from the guest's `/`, never the host's); the last one only when `followFinal`.
    /// At most 40 symlinks are followed, as Linux allows (ELOOP beyond).
    public func resolve(_ path: String, followFinal: Bool = true) throws -> GuestNode {
        try chain(path, followFinal: followFinal).last ?? root
    }

    /// The directories from `/` down to what `path` resolves to, that node included, as
    /// `resolve` walks them (symlinks replaced by where they lead, `..` taken back): the real
    /// ancestors, which the drivers cannot give (they list no `..`). Used to refuse moving or
    /// copying a directory into itself.
    public func chain(_ path: String, followFinal: Bool = true) throws -> [GuestNode] {
        var stack: [GuestNode] = [root]
        var pending: [[UInt8]] = Self.components(path)
        var symlinks = 0
        while !pending.isEmpty {
            let name = pending.removeFirst()
            if name == [0x2E] { continue }
            if name == [0x2E, 0x2E] { if stack.count > 1 { stack.removeLast() }; continue }
            guard let dir = stack.last else { break }
            guard try attributes(dir).isDirectory else {
                throw ImageError(structure: path, reason: "not a directory", errno: .notDirectory)
            }
            guard let child = try lookup(dir, name) else {
                throw ImageError(structure: path, reason: "no such file or directory in the guest", errno: .noSuchFileOrDirectory)
            }
            let info = try attributes(child)
            if info.isSymlink && (followFinal || !pending.isEmpty) {
                symlinks += 1
                guard symlinks <= 40 else {
                    throw ImageError(structure: path, reason: "too many levels of symbolic links", errno: .tooManySymbolicLinkLevels)
                }
                let target = try filesystem(of: child).readlink(child.inode)
                if target.first == 0x2F { stack = [root] }
                pending = Self.components(String(decoding: target, as: UTF8.self)) + pending
                continue
            }
            stack.append(child)
        }
        return stack
    }

    public static func components(_ path: String) -> [[UInt8]] {
        path.split(separator: "/", omittingEmptySubsequences: true).map { Array($0.utf8) }
    }

    package static func normalize(_ mountpoint: String) -> String {
        let parts = mountpoint.split(separator: "/", omittingEmptySubsequences: true)
        return "/" + parts.joined(separator: "/")
    }
}
