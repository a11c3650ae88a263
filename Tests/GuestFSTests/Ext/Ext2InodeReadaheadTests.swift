import Foundation
import Testing
import TestSupport
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFS

/// Inode-table read-ahead (Ext2Filesystem+InodeReadahead.swift, IOChannelReadahead.swift):
/// stating every file of a large directory costs a few run reads, not one device read per
/// inode-table block; a lone inode costs one block; what is read is what libext2fs reads alone;
/// and the block cache it fills stays bounded (its eviction is IOChannelCacheTests').
@Suite struct Ext2InodeReadaheadTests {
    /// 3 000 empty files in one directory: 188 inode-table blocks of 16 inodes at 4 KiB.
    static func image(_ dir: TempDir) throws -> String {
        let src = dir.file("src")
        try FileManager.default.createDirectory(atPath: src + "/d", withIntermediateDirectories: true)
        for i in 0..<3000 { FileManager.default.createFile(atPath: src + "/d/f\(i)", contents: nil) }
        let img = dir.file("fs.img")
        try Shell.check("mke2fs -q -F -t ext4 -b 4096 -I 256 -N 8192 -d \(src) \(img) 64M")
        return img
    }

    @Test func statingADirectoryReadsItsInodeTableInRuns() throws {
        let dir = try TempDir("imagemount-inode-readahead")
        let img = try Self.image(dir)
        let counting = CountingDevice(try RawImage(path: img, writable: false))
        let ext = try Ext2Filesystem(device: counting)
        let d = try #require(try ext.lookup(Ext2Filesystem.rootInode, Array("d".utf8)))
        let entries = try ext.directoryEntries(d.inode)
        #expect(entries.count == 3000)
        counting.reset()
        var stated: [UInt32: UInt64] = [:]
        for e in entries { stated[e.inode] = try ext.inode(e.inode).size }
        let inodeBlockReads = counting.reads.value.filter { $0.length == 4096 }.count
        let runReads = counting.reads.value.filter { $0.length > 4096 }
        // 188 blocks without read-ahead; with it, one block for the first miss of each run and
        // one read of the run on the second (at most 64 blocks each).
        #expect(inodeBlockReads + runReads.count < 20, "\(inodeBlockReads) block reads, \(runReads.count) runs")
        #expect(runReads.allSatisfy { $0.length <= 64 * 4096 })
        #expect(stated.count == 3000 && stated.values.allSatisfy { $0 == 0 })

        // The same inodes through a filesystem whose every read is one block of the device:
        // read-ahead changes how the bytes arrive, not which bytes.
        let plain = try Ext2Filesystem(device: try RawImage(path: img, writable: false))
        for e in entries.prefix(200) {
            let a = try ext.inode(e.inode), b = try plain.inode(e.inode)
            #expect(a.mode == b.mode && a.size == b.size && a.mtime == b.mtime && a.links == b.links)
        }
    }

    @Test func aLoneInodeCostsOneBlock() throws {
        let dir = try TempDir("imagemount-inode-readahead-lone")
        let counting = CountingDevice(try RawImage(path: try Self.image(dir), writable: false))
        let ext = try Ext2Filesystem(device: counting)
        counting.reset()
        // Far apart: each is the first miss in its run, so no run is read for it.
        for number: UInt32 in [20 + 16 * 64, 20 + 2 * 16 * 64, 20 + 3 * 16 * 64] { _ = try ext.inode(number) }
        #expect(counting.reads.value.allSatisfy { $0.length == 4096 })
        #expect(counting.reads.value.count == 3)
    }
}
