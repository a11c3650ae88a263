@testable import GuestFSBlock
@testable import GuestFSFilesystem
@testable import GuestFSNTFS

extension FuzzHarness {
    /// NTFS/ over libntfs-3g: our ntfs_device (every read bounded to the device), the mount
    /// (boot sector, $MFT/$MFTMirr, $Volume, $UpCase, $Bitmap), statfs, then a bounded walk:
    /// index roots and allocations, attribute lists, Interix and reparse-point symlinks, named
    /// streams as xattrs, file reads (compressed, sparse) at the start and the end. Then the
    /// write side on a memory overlay: the safety checks, the read-write remount, create,
    /// write, mkdir, rename, streams, truncate, unlink, rmdir, close (ntfs_umount).
    static func ntfs(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/ntfs")
        ntfsRead(device)
        ntfsWrite(device)
    }

    static func ntfsWrite(_ device: any BlockDevice) {
        let overlay = MemoryOverlayDevice(base: device, maxBytes: 8 << 20)
        guard let w = try? NTFSFilesystem(device: overlay, writable: true, options: NTFSMountOptions(parsing: ["remove_hiberfile,recover"])),
              w.isWritable else { return }
        w.setDamageLog { _ in }
        defer { try? w.close() }
        let root = w.rootNode
        let file = NewInode(mode: 0o100644, uid: 0, gid: 0), folder = NewInode(mode: 0o040755, uid: 0, gid: 0)
        let payload = [UInt8](repeating: 0x5A, count: 9000)
        if let a = try? w.createNode(in: root, name: Array("fuzzed.txt".utf8), file) {
            _ = try? payload.withUnsafeBytes { try w.write(a, at: 0, $0) }
            _ = try? payload.withUnsafeBytes { try w.write(a, at: 70_000, $0) }
            try? w.setXattr(a, name: "user.s", value: Array(payload.prefix(300)), mode: .createOrReplace)
            try? w.truncate(a, to: 100)
        }
        if let d = try? w.makeDirectory(in: root, name: Array("dir".utf8), folder) {
            for i in 0..<20 { _ = try? w.createNode(in: d, name: Array("entry \(i)".utf8), file) }
            try? w.rename(from: root, Array("fuzzed.txt".utf8), to: d, Array("moved".utf8), flags: [])
        }
        if let first = try? w.entries(root).first {
            if first.type == .directory {
                try? w.removeDirectory(in: root, name: first.name)
            } else {
                _ = try? payload.withUnsafeBytes { try w.write(first.node, at: 4096, $0) }
                try? w.unlink(in: root, name: first.name)
            }
        }
    }

    static func ntfsRead(_ device: any BlockDevice) {
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
