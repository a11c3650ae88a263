import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// The filesystems of drive letters other than the root's, each opened once, when a Windows
/// path first names it.
final class DriveTrees {
    private(set) var trees: [String: MountTree] = [:]
    /// The guest's drive letters, read from its SYSTEM hive when a path first names a letter.
    private var mappings: [(letter: String, device: String)]?

    func mappings(_ read: () -> (mappings: [(letter: String, device: String)], warnings: [String])) -> [(letter: String, device: String)] {
        if let mappings { return mappings }
        let (found, warnings) = read()
        for warning in warnings { Diagnostics.warn(warning) }
        mappings = found
        return found
    }

    func tree(for device: String, _ open: () throws -> MountTree) rethrows -> MountTree {
        if let tree = trees[device] { return tree }
        let tree = try open()
        trees[device] = tree
        return tree
    }
}

extension Session {
    /// Where a path the user typed lands. On a Windows guest that inspection mounted (no `-m`),
    /// the helpers take paths as virt-cat and virt-edit do (guestfs-tools common/windows/windows.c
    /// `windows_path`): `C:\Windows\win.ini`, `c:/windows/WIN.INI`, `\Users`, each name matched
    /// ignoring case; the drive letter is looked up in the guest's drive mappings (MountedDevices)
    /// and that volume is opened on its own, at `/`, as virt-cat remounts it. With no mapping
    /// for `C:` (no readable SYSTEM hive) `C:` is the root inspection found. Other guests' paths,
    /// and every path with `-m`, are used as given.
    func guestPath(_ path: String) throws -> (tree: MountTree, path: String) {
        guard let os, os.type == "windows" else { return (tree, path) }
        let (drive, unixPath) = WindowsPath.split(path)
        var target = tree
        if let drive {
            let letter = String(drive).uppercased()
            let device: String
            let mappings = driveTrees.mappings { Inspector.windowsDriveMappings(for: os, tree: tree, in: guest) }
            if let mapped = mappings.first(where: { $0.letter.uppercased() == letter }) {
                device = mapped.device
            } else if letter == "C" {
                device = os.root
            } else {
                let known = mappings.map { "\($0.letter): \($0.device)" }.joined(separator: ", ")
                throw CLIError(message: "\(path): drive '\(drive):' not found (drive mappings: \(known.isEmpty ? "none" : known))")
            }
            if device != os.root {
                target = try driveTrees.tree(for: device) {
                    let tree = try MountTree(mounting: [MountTree.Entry(device: try guest.device(named: device), mountpoint: "/")], writable: writable)
                    for mount in tree.mounts { for warning in mount.filesystem.warnings { Diagnostics.warn(warning) } }
                    return tree
                }
            }
        }
        return (target, WindowsPath.caseSensitivePath(target, unixPath))
    }

    /// Every mount of the session: the tree, then the drive trees opened for Windows paths
    /// (closed at the end of a writing command).
    var allMounts: [MountTree.Mount] {
        tree.mounts + driveTrees.trees.keys.sorted().flatMap { driveTrees.trees[$0]?.mounts ?? [] }
    }
}
