import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS

/// The directories on the path of one recursive walk (ls -R, copy-out, du-like walks), so that
/// a directory hard-link loop — an entry pointing back at an ancestor's inode, which ext's
/// format allows a hostile image to hold — is skipped with a warning instead of walked forever.
///
/// A directory reached twice by different paths that are not nested (a directory hard-linked
/// in two places) is walked both times, as the kernel would show it; only a directory already
/// on the current path is refused. The FUSE readdir needs none of this: the kernel walks.
public struct DirectoryWalkPath: Sendable {
    private var onPath: Set<GuestNode> = []

    /// Most directories a walk descends through: a guest path deeper than Linux's PATH_MAX
    /// (4096 bytes, so 2048 levels of one-byte names) cannot be reached there, and a recursive
    /// walk must not exhaust its stack on a hostile chain of nested directories.
    public static let maxDepth = 2048

    /// Directories on the path now, the top included.
    public var depth: Int { onPath.count }

    /// Starts a walk at `top`, which counts as on the path.
    public init(top: GuestNode) { onPath.insert(top) }

    /// Enters directory `dir`: true when the walk may descend into it (then call `leave`
    /// after it), false when `dir` is already on the path (a loop).
    public mutating func enter(_ dir: GuestNode) -> Bool { onPath.insert(dir).inserted }

    /// The one-line warning for a directory skipped because the walk is `maxDepth` deep.
    public static func depthWarning(path: String) -> String {
        "\(path): nested more than \(maxDepth) directories deep; not descending into it"
    }

    /// Leaves directory `dir`, entered with `enter`.
    public mutating func leave(_ dir: GuestNode) { onPath.remove(dir) }

    /// The one-line warning for a skipped loop: the guest path and the inode it points back at.
    public static func loopWarning(path: String, node: GuestNode, deviceName: String) -> String {
        "\(path): directory inode \(node.inode) on \(deviceName) is already on the path being walked (a directory hard-link loop); not descending into it"
    }
}

extension MountTree {
    /// `DirectoryWalkPath.loopWarning` with the device `node` lives on.
    public func loopWarning(path: String, node: GuestNode) -> String {
        DirectoryWalkPath.loopWarning(path: path, node: node, deviceName: mounts[node.mount].deviceName)
    }
}
