@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect

extension FuzzHarness {
    /// XFS/: the superblock and its feature policy, statfs, a bounded walk of the tree (inodes
    /// v1–v3, shortform/block/leaf/node directories, bmbt walks with their loop guard),
    /// symlinks inline and remote, attributes, and file reads at both ends.
    static func xfs(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/xfs")
        guard let fs = try? XFSFilesystem(device: device, damageLog: { _ in }) else { return }
        _ = fs.label
        _ = try? fs.usage()
        var pending: [(node: UInt64, depth: Int)] = [(fs.rootNode, 0)]
        var seen = Set<UInt64>()
        var budget = 300   // nodes looked at, in all
        while let (dir, depth) = pending.popLast(), budget > 0 {
            guard seen.insert(dir).inserted, let entries = try? fs.entries(dir) else { continue }
            _ = try? fs.lookup(dir, entries.first?.name ?? [0x61])
            _ = try? fs.xattrs(dir)
            for entry in entries.prefix(64) {
                budget -= 1
                if budget <= 0 { break }
                guard let a = try? fs.attributes(entry.node) else { continue }
                _ = try? fs.xattr(entry.node, name: "user.fuzz")
                if a.isDirectory {
                    if depth < 8 { pending.append((entry.node, depth + 1)) }
                } else if a.isSymlink {
                    _ = try? fs.readlink(entry.node)
                } else if a.isRegular, let file = try? fs.openFile(entry.node) {
                    readGuestFile(file)
                }
            }
        }
    }
}
