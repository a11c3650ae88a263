import GuestFSFilesystem
import GuestFS

/// The bytes of regular files below a guest node, for progress's percent and ETA: a walk of
/// metadata only, made when progress is shown. Each directory and each inode counts once (a
/// damaged image's loops and hard links do not inflate it), at most `DirectoryWalkPath.maxDepth`
/// deep; what cannot be read counts as nothing (the copy itself reports it).
enum GuestTreeSize {
    static func bytes(below top: GuestNode, in tree: MountTree) -> UInt64 {
        var seen: Set<GuestNode> = []
        var total: UInt64 = 0
        func visit(_ node: GuestNode, depth: Int) {
            guard let info = try? tree.attributes(node) else { return }
            if info.isDirectory || info.links > 1 { guard seen.insert(node).inserted else { return } }
            if info.isRegular { total &+= info.size }
            guard info.isDirectory, depth < DirectoryWalkPath.maxDepth,
                  let entries = try? tree.entries(node, rejected: { _ in }) else { return }
            for entry in entries { visit(entry.node, depth: depth + 1) }
        }
        visit(top, depth: 0)
        return total
    }
}
