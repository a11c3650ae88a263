@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
@testable import GuestFSInspect

extension FuzzHarness {
    /// Vfat/: the boot sector, the FAT (12/16/32), cluster chains, directories with long names,
    /// file reads through a bounded walk; then a short write workload (create, write, mkdir,
    /// rename, truncate, unlink, rmdir, close) on a memory overlay, so allocation, directory
    /// growth and FSInfo updates run over damaged tables too.
    static func vfat(_ data: [UInt8]) {
        let device = FuzzDevice(input: data, name: "/nonexistent-fuzz/vfat")
        guard let fs = try? VfatFilesystem(device: device) else { return }
        _ = fs.label
        _ = fs.uuid
        _ = try? fs.usage()
        var pending: [(UInt64, Int)] = [(fs.rootNode, 0)]
        var budget = 200  // nodes looked at, in all
        var seen = Set<UInt64>()
        while let (dir, depth) = pending.popLast(), budget > 0 {
            guard seen.insert(dir).inserted, let entries = try? fs.entries(dir) else { continue }
            _ = try? fs.lookup(dir, Array("README.TXT".utf8))
            for entry in entries.prefix(64) {
                budget -= 1
                if budget <= 0 { break }
                guard let attrs = try? fs.attributes(entry.node) else { continue }
                _ = try? fs.lookup(dir, entry.name)
                if attrs.isDirectory {
                    if depth < 8 { pending.append((entry.node, depth + 1)) }
                } else if let file = try? fs.openFile(entry.node) {
                    var buffer = [UInt8](repeating: 0, count: 16 << 10)
                    buffer.withUnsafeMutableBytes { b in
                        _ = try? file.read(into: b, at: 0)
                        if attrs.size > UInt64(b.count) { _ = try? file.read(into: b, at: attrs.size - UInt64(b.count)) }
                    }
                }
            }
        }
        try? fs.close()

        let overlay = MemoryOverlayDevice(base: device, maxBytes: 8 << 20)
        guard let w = try? VfatFilesystem(device: overlay, writable: true) else { return }
        let root = w.rootNode
        let file = NewInode(mode: 0o100644, uid: 0, gid: 0), folder = NewInode(mode: 0o040755, uid: 0, gid: 0)
        let payload = [UInt8](repeating: 0x5A, count: 9000)
        if let a = try? w.createNode(in: root, name: Array("a fuzzed long name.txt".utf8), file) {
            _ = try? payload.withUnsafeBytes { try w.write(a, at: 0, $0) }
            _ = try? payload.withUnsafeBytes { try w.write(a, at: 20_000, $0) }
            try? w.truncate(a, to: 100)
        }
        if let d = try? w.makeDirectory(in: root, name: Array("Fuzz Dir".utf8), folder) {
            for i in 0..<20 { _ = try? w.createNode(in: d, name: Array("entry number \(i)".utf8), file) }
            try? w.rename(from: root, Array("a fuzzed long name.txt".utf8), to: d, Array("moved".utf8), flags: [])
        }
        if let first = try? w.entries(root).first {
            if first.type == .directory {
                try? w.removeDirectory(in: root, name: first.name)
            } else {
                _ = try? payload.withUnsafeBytes { try w.write(first.node, at: 4096, $0) }
                try? w.unlink(in: root, name: first.name)
            }
        }
        try? w.close()
    }
}
