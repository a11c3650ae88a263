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
import Testing
import TestSupport

/// Unfinished bmap intents (BUI) carried out in memory after replay (XFSLogBmapIntents.swift),
/// against the kernel's recovery of a copy, which finishes them in xlog_recover_process_intents.
@Suite(.serialized) struct XFSLogBmapIntentTests {
    /// This kernel has no XFS error injection (CONFIG_XFS_DEBUG is off: no errortag in sysfs),
    /// so the unfinished intent is made by a race, as xfstests' log-recovery tests make theirs
    /// without it: thousands of one-block reflink remaps in a row, and `shutdown -f` in the
    /// middle of them. A remap commits its BUI and CUI in one transaction and their done items
    /// in the next ones; when the shutdown's log force lands between the two, the BUI is on
    /// disk without its BUD (about a quarter of the attempts here). Where it lands depends on the
    /// load, so the workload is retried with other delays until the log holds one.
    ///
    /// With `btreeForks`, every destination first gets 200 scattered blocks past 16 MiB (synced,
    /// so they are real extents), which puts its data fork in B+tree format: the overlay cannot
    /// rewrite such a fork, so the driver applies those intents to the extent list it resolves
    /// (XFSFilesystem+Intents.swift), and only the driver's view is compared with the kernel's.
    @Test(arguments: [false, true])
    func unfinishedBmapIntentsAreCarriedOutAsTheKernelDoes(btreeForks: Bool) throws {
        let dir = try TempDir("xfs-bui")
        var found: (image: String, report: XFSLogReport)? = nil
        let start = Date()
        for attempt in 0 ..< 60 where found == nil && Date().timeIntervalSince(start) < 180 {
            let wait = String(format: "%.2f", (btreeForks ? 0.4 : 0.1) + 0.07 * Double(attempt % 8))
            let scatter = btreeForks
                ? "xargs -0 xfs_io -f dst$l$r < /tmp/bui-scatter.$$ &&"
                : ""
            // Four loops each give dst<loop><round> the blocks of src one by one, each block its
            // own remap (one BUI, one CUI), contiguous with the one before, so every dst stays
            // one extent in the inode.
            let image = try XFSLogTest.dirtyImage(in: dir, name: "bui\(attempt).img", mkfs: "-l size=16m -m reflink=1,rmapbt=1", workload: """
                M=$PWD
                dd if=/dev/urandom of=src bs=1M count=8 status=none
                echo kept > kept
                sync
                seq 0 2047 | awk '{ printf "-c\\nreflink src %d %d 4096\\n", $1 * 4096, $1 * 4096 }' | tr '\\n' '\\0' > /tmp/bui-cmds.$$
                seq 0 2 398 | awk '{ printf "-c\\npwrite -q %d 4096\\n", 16777216 + $1 * 4096 } END { printf "-c\\nfsync\\n" }' | tr '\\n' '\\0' > /tmp/bui-scatter.$$
                for l in a b c d; do
                  (cd "$M" && for r in $(seq 1 60); do \(scatter) xargs -0 xfs_io -f dst$l$r < /tmp/bui-cmds.$$ || break; done) < /dev/null > /dev/null 2>&1 &
                done
                sleep \(wait)
                xfs_io -x -c 'shutdown -f' "$M"
                wait
                rm -f /tmp/bui-cmds.$$ /tmp/bui-scatter.$$
                """, shutsDownItself: true)
            if let report = try XFSLogTest.recover(image)?.report,
               report.unfinishedIntents.contains(where: { $0.type == XFSLogItemType.bui }) {
                found = (image, report)
            } else {
                try? FileManager.default.removeItem(atPath: image)
            }
        }
        let (image, report) = try #require(found, "no attempt left an unfinished BUI in the log")
        #expect(report.notReplayed.isEmpty, "\(report.notReplayed)")
        if btreeForks {
            #expect(!report.deferredBmapIntents.isEmpty, "\(report)")
        } else {
            #expect(report.bmapIntentsFinished > 0, "\(report) \(report.notReplayed)")
            // The tree, bytes and xattrs through a kernel mount of our overlay, against the
            // kernel's recovery; free space counters and xfs_repair as for every other log.
            try XFSLogRecoveryTests().recoverAndCompare(image, in: dir)
        }

        // The driver itself: st_blocks, bytes, SEEK_DATA ranges and statfs as the kernel shows
        // them after its recovery.
        let before = try XFSLogTest.sha256(image)
        let copy = dir.file("kernel-driver.img"), mnt = dir.file("kernel-driver.mnt")
        try XFSLogTest.copy(image, copy)
        try Shell.check("mkdir -p \(mnt) && mount -o loop \(copy) \(mnt) && umount \(mnt)")
        try Shell.check("mount -o loop,ro \(copy) \(mnt)")
        let kernel: [XFSFixtures.KernelEntry], statfs: [UInt64]
        do {
            defer { _ = try? Shell.run("umount \(mnt)") }
            kernel = XFSFixtures.kernelView(mnt)
            statfs = try Shell.check("stat -f -c '%S %b %f %a %c %d' \(mnt)").split(separator: " ")
                .compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let fs = try XFSFilesystem(device: RawImage(path: image, writable: false))
        let owners = Set(report.unfinishedIntents.compactMap { $0.bmap?.owner })
        let targets = kernel.filter { owners.contains($0.ino) }
        #expect(!targets.isEmpty && targets.allSatisfy { $0.blocks > 0 }, "the kernel's recovery shows the files the intents map into")
        for k in kernel {
            let a = try fs.attributes(k.ino)
            #expect(a.size == k.size && a.blocks512 == k.blocks, "/\(k.path): size \(a.size) blocks \(a.blocks512), kernel \(k.size) \(k.blocks)")
            if let bytes = k.bytes {
                let file = try fs.openFile(k.ino)
                #expect(try XFSFixtures.readAll(file) == bytes, "/\(k.path) bytes")
                if let ranges = k.dataRanges, let xfsFile = file as? XFSFile {
                    let ours = try xfsFile.dataRanges()
                    #expect(ours.map { [$0.offset, $0.length] } == ranges.map { [$0.offset, $0.length] }, "/\(k.path) SEEK_DATA")
                }
            }
        }
        let u = try fs.usage()
        #expect([u.blockSize, u.totalBlocks, u.freeBlocks, u.availableBlocks, u.totalInodes, u.freeInodes] == statfs)
        #expect(try XFSLogTest.sha256(image) == before)
    }

    /// The fork edits themselves, on lists made here: a map merges with contiguous neighbours
    /// and refuses to land on a mapping; an unmap cuts the extents at the range's ends.
    @Test func mapAndUnmapEditTheExtentList() throws {
        func intent(_ map: Bool, off: UInt64, len: UInt32, at block: UInt64 = 0, unwritten: Bool = false) -> XFSBmapIntent {
            var bytes = [UInt8](repeating: 0, count: 48)
            func put(_ o: Int, _ v: UInt64, _ w: Int) { for i in 0 ..< w { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
            put(4, 1, 4); put(16, 131, 8); put(24, block, 8); put(32, off, 8); put(40, UInt64(len), 4)
            put(44, UInt64(map ? XFSBmapIntent.map : XFSBmapIntent.unmap) | (unwritten ? UInt64(XFSBmapIntent.unwritten) : 0), 4)
            return try! XFSBmapIntent(XFSLogItemBytes(bytes: bytes, order: .little, what: "BUI"))
        }
        func e(_ off: UInt64, _ block: UInt64, _ count: UInt64, _ unwritten: Bool = false) -> XFSExtent {
            XFSExtent(fileOffset: off, startBlock: block, blockCount: count, unwritten: unwritten)
        }
        var list = [e(0, 100, 4), e(10, 200, 2)]
        #expect(XFSLogReplay.map(intent(true, off: 4, len: 2, at: 104), into: &list) == 2)
        #expect(list == [e(0, 100, 6), e(10, 200, 2)], "merged left")
        #expect(XFSLogReplay.map(intent(true, off: 8, len: 2, at: 198), into: &list) == 2)
        #expect(list == [e(0, 100, 6), e(8, 198, 4)], "merged right")
        #expect(XFSLogReplay.map(intent(true, off: 6, len: 2, at: 106, unwritten: true), into: &list) == 2)
        #expect(list == [e(0, 100, 6), e(6, 106, 2, true), e(8, 198, 4)], "another state does not merge")
        #expect(XFSLogReplay.map(intent(true, off: 3, len: 2, at: 500), into: &list) == nil, "not into a mapping")
        var both = [e(0, 100, 4), e(6, 106, 2)]
        #expect(XFSLogReplay.map(intent(true, off: 4, len: 2, at: 104), into: &both) == 2)
        #expect(both == [e(0, 100, 8)], "merged on both sides")

        var cut = [e(0, 100, 10), e(20, 300, 5), e(30, 400, 5)]
        #expect(XFSLogReplay.unmap(intent(false, off: 2, len: 3), from: &cut) == 3)
        #expect(cut == [e(0, 100, 2), e(5, 105, 5), e(20, 300, 5), e(30, 400, 5)], "split in two")
        #expect(XFSLogReplay.unmap(intent(false, off: 8, len: 24), from: &cut) == 9)
        #expect(cut == [e(0, 100, 2), e(5, 105, 3), e(32, 402, 3)], "cut at both ends, the middle gone")
        #expect(XFSLogReplay.unmap(intent(false, off: 100, len: 5), from: &cut) == 0)

        // Hostile intents are refused before they touch a fork.
        #expect(throws: XFSLogReplayError.self) { try intent(true, off: (1 << 54) - 1, len: 2).validate() }
        #expect(throws: XFSLogReplayError.self) { try intent(true, off: 0, len: 1 << 22).validate() }
        #expect(throws: XFSLogReplayError.self) { try intent(true, off: 0, len: 0).validate() }
        #expect(throws: XFSLogReplayError.self) { try XFSBmapIntent(XFSLogItemBytes(bytes: [UInt8](repeating: 0, count: 80), order: .little, what: "BUI")) }
    }
}
