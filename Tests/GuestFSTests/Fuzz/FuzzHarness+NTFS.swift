@testable import GuestFSBlock
@testable import GuestFSFilesystem
@testable import GuestFSNTFS

extension FuzzHarness {
    /// NTFS/ over libntfs-3g: our ntfs_device (every read bounded to the device), the mount
    /// (boot sector, $MFT/$MFTMirr, $Volume, $UpCase, $Bitmap), statfs, then a bounded walk:
    /// index roots and allocations, attribute lists, Interix and reparse-point symlinks, named
    /// streams as xattrs, file reads (compressed, sparse) at the start and the end.
    static func ntfs(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/ntfs")
        guard let fs = try? NTFSFilesystem(device: device) else { return }
        fs.setDamageLog { _ in }
        defer { try? fs.close() }
        _ = try? fs.usage()
        var pending: [(node: UInt64, depth: Int)] = [(fs.rootNode, 0)]
        var seen: Set<UInt64> = [fs.rootNode]
        var budget = 300   // nodes looked at, in all
        while let (dir, depth) = pending.popLast(), budget > 0 {
            guard let entries = try? fs.entries(dir) else { continue }
            _ = try? fs.lookup(dir, entries.first?.name ?? [0x61])
            for entry in entries.prefix(64) {
                budget -= 1
                if budget <= 0 { break }
                guard let a = try? fs.attributes(entry.node) else { continue }
                _ = try? fs.xattrs(entry.node)
                if a.isDirectory {
                    if depth < 8, seen.insert(entry.node).inserted { pending.append((entry.node, depth + 1)) }
                } else if a.isSymlink {
                    _ = try? fs.readlink(entry.node)
                } else if a.isRegular, let file = try? fs.openFile(entry.node) {
                    readGuestFile(file)
                }
            }
        }
    }
}
