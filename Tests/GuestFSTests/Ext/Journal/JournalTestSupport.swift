import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import TestSupport

/// Small helpers the journal suites share.
enum JournalTest {
    /// Every byte of `device`.
    static func readAll(_ device: any BlockDevice) throws -> Data {
        var out = Data(count: Int(device.size))
        let chunk = 1 << 20
        try out.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = min(chunk, raw.count - offset)
                try device.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[offset..<offset + n]), at: UInt64(offset))
                offset += n
            }
        }
        return out
    }

    /// The contents of `path` in `fs`, resolved from the root without symlinks.
    static func file(_ fs: Ext2Filesystem, _ path: String) throws -> Data? {
        var inode = Ext2Filesystem.rootInode
        for name in path.split(separator: "/") {
            guard let entry = try fs.lookup(inode, Array(name.utf8)) else { return nil }
            inode = entry.inode
        }
        let file = try fs.openFile(inode)
        var data = Data(count: Int(file.size))
        _ = try data.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        return data
    }

    /// The first block (of `blockSize`) where `a` and `b` differ, ignoring the primary
    /// superblock's 1024 bytes at 1024 (its write time and counters are e2fsck's own); nil if none.
    static func firstDifference(_ a: Data, _ b: Data, blockSize: Int) -> Int? {
        guard a.count == b.count else { return -1 }
        var x = a, y = b
        x.replaceSubrange(1024..<2048, with: Data(count: 1024))
        y.replaceSubrange(1024..<2048, with: Data(count: 1024))
        if x == y { return nil }
        var block = 0
        while block * blockSize < x.count {
            let range = (block * blockSize)..<min(x.count, (block + 1) * blockSize)
            if x[range] != y[range] { return block }
            block += 1
        }
        return nil
    }

    /// The byte offset of journal block `index` in a whole-filesystem image (debugfs bmap <8>).
    static func journalBlockOffset(_ image: String, _ index: UInt64, blockSize: Int) throws -> UInt64 {
        try JournalFixtures.blockOf(image, "<8>", index) * UInt64(blockSize)
    }

    /// The journal blocks holding commit blocks, in log order (debugfs logdump).
    static func commitBlocks(_ image: String) throws -> [UInt64] {
        let dump = try Shell.check("debugfs -R logdump \(Shell.quote(image)) 2>/dev/null")
        return dump.split(separator: "\n").compactMap { line in
            guard line.contains("(commit block) at block") else { return nil }
            return UInt64(line.split(separator: " ").last ?? "")
        }
    }

    /// Overwrites `bytes` at `offset` of the file `path`.
    static func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        handle.write(Data(bytes))
    }

    static func readFile(_ path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return Array(handle.readData(ofLength: count))
    }
}
