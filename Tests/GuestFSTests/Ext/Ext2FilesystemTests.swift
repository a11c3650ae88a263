import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import Testing
import TestSupport

/// The ext layer read against the tree `mke2fs -d` was built from, for every variant the
/// foundation issue names (ext2, ext3, ext4 defaults, inline_data, 1k and 4k blocks).
@Suite struct Ext2FilesystemTests {
    static let variants = Fixtures.extVariants.map(\.name)

    func image(_ name: String) throws -> String {
        let v = try #require(Fixtures.extVariants.first { $0.name == name })
        return try Fixtures.image(v.name, type: v.type, options: v.options)
    }

    @Test(arguments: variants)
    func treeMatchesTheSourceDirectory(variant: String) throws {
        let (_, tree) = try GuestWalk.open(image(variant))
        let guest = try GuestWalk.walk(tree)
        let host = HostTree.walk(Fixtures.tree.root)
        #expect(Set(guest.keys) == Set(host.keys), "entry names differ")
        for (path, hostFacts) in host where !path.isEmpty {
            guard let g = guest[path] else { continue }
            #expect(g.facts == hostFacts, "\(String(decoding: path, as: UTF8.self))")
        }
        // Hard links: guest entries share an inode exactly when host entries do.
        let hostInodes = Dictionary(grouping: host.keys.filter { !$0.isEmpty }) { path -> UInt64 in
            var st = stat()
            _ = lstat(Fixtures.tree.root + "/" + String(decoding: path, as: UTF8.self), &st)
            return UInt64(st.st_ino)
        }.values.map(Set.init).filter { $0.count > 1 }
        let guestInodes = Dictionary(grouping: guest.keys.filter { !$0.isEmpty }) { guest[$0]!.node }
            .values.map(Set.init).filter { $0.count > 1 }
        #expect(Set(hostInodes) == Set(guestInodes))
    }

    @Test(arguments: Fixtures.qcow2Variants.map(\.name))
    func treeAndContentsOnQcow2(variant: String) throws {
        let v = try #require(Fixtures.qcow2Variants.first { $0.name == variant })
        let (_, tree) = try GuestWalk.open(Fixtures.qcow2(image("ext4-1k"), options: v.options))
        let guest = try GuestWalk.walk(tree)
        let host = HostTree.walk(Fixtures.tree.root)
        #expect(Set(guest.keys) == Set(host.keys))
        for (path, facts) in host where !path.isEmpty { #expect(guest[path]?.facts == facts) }
        for relative in Fixtures.tree.regularFiles {
            let node = try tree.resolve("/" + relative)
            let data = try GuestWalk.readAll(tree.ext(of: node).openFile(node.inode))
            #expect(data == (try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + relative)))), "\(relative)")
        }
    }

    @Test(arguments: variants)
    func fileContentsAreByteIdentical(variant: String) throws {
        let (_, tree) = try GuestWalk.open(image(variant))
        for relative in Fixtures.tree.regularFiles {
            let node = try tree.resolve("/" + relative)
            let data = try GuestWalk.readAll(tree.ext(of: node).openFile(node.inode))
            let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + relative)))
            #expect(data == expected, "\(relative)")
        }
    }

    @Test(arguments: variants)
    func readsAtRandomOffsetsMatch(variant: String) throws {
        let (_, tree) = try GuestWalk.open(image(variant))
        let node = try tree.resolve("/data/r1048579")
        let file = try tree.ext(of: node).openFile(node.inode)
        let expected = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/data/r1048579")))
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let offset = Int(rng.next() % UInt64(expected.count + 100))
            let length = Int(rng.next() % 70_000)
            var buffer = [UInt8](repeating: 0xAA, count: length)
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: UInt64(offset)) }
            let want = offset < expected.count ? Array(expected[offset..<min(expected.count, offset + length)]) : []
            #expect(n == want.count)
            #expect(Array(buffer.prefix(n)) == want, "offset \(offset) length \(length)")
        }
    }

    @Test(arguments: variants)
    func sparseFileKeepsItsHoles(variant: String) throws {
        let (_, tree) = try GuestWalk.open(image(variant))
        let node = try tree.resolve("/" + Fixtures.tree.sparseFile)
        let file = try tree.ext(of: node).openFile(node.inode)
        let ranges = try file.dataRanges()
        let mapped = ranges.reduce(0) { $0 + $1.length }
        // 12 100 bytes of data in a 5 MiB file: the map must be a few blocks, not the whole file.
        #expect(mapped < 64 * 1024, "data ranges: \(ranges)")
        #expect(ranges.first?.offset == 0)
        #expect(ranges.contains { $0.offset <= 1_048_579 && $0.offset + $0.length >= 1_048_579 + 7000 })
        #expect(file.inode.blocks512 * 512 < 128 * 1024)
    }

    @Test(arguments: variants)
    func xattrsMatchGetfattr(variant: String) throws {
        let (_, tree) = try GuestWalk.open(image(variant))
        for (path, name) in [("etc/hostname", "user.comment"), ("data/one", "user.binary"), ("modes/private", "trusted.secret")] {
            let node = try tree.resolve("/" + path, followFinal: false)
            let ours = try tree.ext(of: node).xattr(node.inode, name: name)
            let hex = try Shell.check("getfattr --absolute-names -h -e hex -n \(name) --only-values \(Shell.quote(Fixtures.tree.root + "/" + path)) | od -An -tx1 | tr -d ' \\n'")
            #expect(ours.map { $0.map { String(format: "%02x", $0) }.joined() } == hex, "\(path) \(name)")
        }
        let plain = try tree.resolve("/data/r4096")
        #expect(try tree.ext(of: plain).xattrs(plain.inode).isEmpty)
    }

    @Test func nanosecondTimesAreRead() throws {
        let dir = try TempDir()
        let path = dir.file("ns.img")
        try Shell.check("cp --sparse=always \(Shell.quote(try image("ext4"))) \(Shell.quote(path))")
        try Shell.check("debugfs -w -R 'sif /etc/hostname mtime_extra 0x1d6f3454' \(Shell.quote(path)) 2>&1")
        let (_, tree) = try GuestWalk.open(path)
        let node = try tree.resolve("/etc/hostname")
        let inode = try tree.inode(node)
        // extra = nanoseconds << 2 | epoch bits (ext4 inodes.rst, "Inode Timestamps").
        #expect(inode.mtime.nanoseconds == Int32(0x1d6f3454 >> 2))
        #expect(inode.mtime.seconds == Int64(0x1d6f3454 & 3) << 32 + (try hostMtime("etc/hostname")))
    }

    func hostMtime(_ relative: String) throws -> Int64 {
        Int64(try Shell.check("stat -c %Y \(Shell.quote(Fixtures.tree.root + "/" + relative))").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test(arguments: variants)
    func usageFollowsDumpe2fs(variant: String) throws {
        let path = try image(variant)
        let (guest, _) = try GuestWalk.open(path)
        let fs = try Ext2Filesystem(device: try #require(guest.extFilesystems.first).device)
        let usage = fs.usage()
        let dump = try Shell.check("dumpe2fs -h \(Shell.quote(path)) 2>/dev/null")
        func field(_ name: String) -> UInt64 {
            for line in dump.split(separator: "\n") where line.hasPrefix(name + ":") {
                return UInt64(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            return 0
        }
        #expect(usage.totalBlocks == field("Block count") - field("Overhead clusters"))
        #expect(usage.freeBlocks == field("Free blocks"))
        #expect(usage.totalInodes == field("Inode count"))
        #expect(usage.freeInodes == field("Free inodes"))
        let delalloc = dump.contains(" extent") ? min(field("Block count") / 50, 4096) : 0
        #expect(usage.availableBlocks == field("Free blocks") - field("Reserved block count") - delalloc)
    }

    @Test func parallelReadsReturnTheRightBytes() throws {
        let (_, tree) = try GuestWalk.open(image("ext4"))
        let files = ["data/r65537", "data/r1048579", "data/r4097", Fixtures.tree.sparseFile]
        let expected = try files.map { try [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.tree.root + "/" + $0))) }
        let opened = try files.map { path -> Ext2File in
            let node = try tree.resolve("/" + path)
            return try tree.ext(of: node).openFile(node.inode)
        }
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let k = i % files.count
            if (try? GuestWalk.readAll(opened[k])) != expected[k] { failures.withValue { $0 += 1 } }
        }
        #expect(failures.value == 0)
    }
}
