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

/// XFS dirty-log recovery into memory, against the kernel's own recovery of a copy: copy A is
/// mounted by the kernel (which replays the log), copy B gets our overlay's chunks and is
/// mounted `ro,norecovery`; the two trees must be equal, and the image must keep every byte.
@Suite(.serialized) struct XFSLogRecoveryTests {
    /// Recovers `image`, checks the image is untouched, and compares with the kernel.
    @discardableResult
    func recoverAndCompare(_ image: String, in dir: TempDir) throws -> XFSLogReport {
        let before = try XFSLogTest.sha256(image)
        let result = try #require(try XFSLogTest.recover(image), "a dirty log must need recovery")
        #expect(try XFSLogTest.sha256(image) == before, "recovery must not write the image")

        let kernelCopy = dir.file("kernel.img"), oursCopy = dir.file("ours.img")
        try XFSLogTest.copy(image, kernelCopy)
        try XFSLogTest.copy(image, oursCopy)
        try XFSLogTest.apply(result.overlay, to: oursCopy)
        // The kernel recovers on a read-write mount (a read-only loop device refuses recovery);
        // the listing is taken on a read-only mount afterwards, so no atime moves.
        let kmnt = dir.file("kernel.mnt")
        try Shell.check("mkdir -p \(kmnt) && mount -o loop \(kernelCopy) \(kmnt) && umount \(kmnt)")
        let kernel = try XFSLogTest.kernelListing(kernelCopy, options: "ro", in: dir)
        let ours = try XFSLogTest.kernelListing(oursCopy, options: "ro,norecovery", in: dir)
        let unrecovered = try XFSLogTest.kernelListing(image, options: "ro,norecovery", in: dir)
        #expect(unrecovered != kernel, "the fixture must differ from its recovered state, or the test proves nothing")
        #expect(XFSLogTest.firstDifference(ours, kernel) == nil)
        // Our copy, with the summary counters we compute written into its superblock and its
        // log formatted clean (what the kernel writes after recovery), is a consistent
        // filesystem to xfs_repair, and its counters are the kernel's.
        let geometry = try XFSLogTest.geometry(try RawImage(path: image, writable: false).readBytes(at: 0, count: 512))
        let counters = try XFSLogRecovery.summaryCounters(device: result.overlay, geometry: geometry,
                                                          unfinished: result.report.unfinishedIntents)
        try XFSLogTest.writeCounters(counters, to: oursCopy)
        let layout = try XFSLogLayout.parse(superblock: try RawImage(path: image, writable: false).readBytes(at: 0, count: 512),
                                            geometry: geometry, deviceSize: 160 << 20)
        try Shell.check("dd if=/dev/zero of=\(oursCopy) bs=512 seek=\(layout.startByte / 512) count=\(layout.blocks) conv=notrunc status=none")
        try Shell.check("xfs_db -x -c 'logformat -c \(result.report.headCycle + 1)' \(oursCopy)")
        // The kernel's mount, after recovery, also frees leftover CoW staging extents and the
        // inodes left on the AGI unlinked lists; xfs_repair reports those, and nothing else.
        // The rmap and refcount B+trees are not edited in memory: a BUI carried out (whose
        // rmap update the kernel logs as a new RUI) and unfinished CUIs and RUIs leave them
        // behind the file forks (XFSLogBmapIntents.swift).
        let treesBehind = result.report.bmapIntentsFinished > 0 || result.report.unfinishedIntents.contains {
            [XFSLogItemType.cui, XFSLogItemType.rui].contains($0.type)
        }
        let repair = try XFSLogTest.repairComplaints(oursCopy).filter { line in
            !(treesBehind && ["reverse-mapping", "reference count", "refcount"].contains { line.contains($0) })
            && !["leftover CoW extent", "agi unlinked bucket", "disconnected inode", "disconnected dir inode"].contains { line.hasPrefix($0) }
                && !(line.hasPrefix("would have reset inode") && line.contains("nlinks from 0"))
                && !(line.hasPrefix("sb_fdblocks") && counters.cowStagingBlocks > 0)
                && !(line.hasPrefix("sb_ifree") && counters.unlinkedInodes > 0)
        }
        #expect(repair.isEmpty, "\(repair.joined(separator: "\n").suffix(3000))")
        let expected = try XFSLogTest.repairComplaints(kernelCopy)
        #expect(expected.isEmpty, "the kernel's recovery must satisfy xfs_repair: \(expected.joined(separator: "\n").suffix(2000))")
        let kernelCounters = try XFSLogTest.superblockCounters(kernelCopy)
        // Exact, except for what unlinked inodes still hold: the kernel's mount inactivates them
        // (xlog_recover_process_iunlinks), and an inode chunk whose last inode that frees goes
        // back to free space (xfs_difree_inobt: no ikeep), so its 64 inodes leave both counts.
        // The inodes in use are the same either way.
        if counters.unlinkedInodes == 0 {
            #expect(counters.inodeCount == kernelCounters.inodeCount && counters.freeInodes == kernelCounters.freeInodes,
                    "ours \(counters), kernel after its recovery \(kernelCounters)")
        } else {
            #expect(counters.inodeCount &- counters.freeInodes == kernelCounters.inodeCount &- kernelCounters.freeInodes,
                    "ours \(counters), kernel after its recovery \(kernelCounters)")
            #expect(kernelCounters.inodeCount <= counters.inodeCount && (counters.inodeCount - kernelCounters.inodeCount) % 64 == 0,
                    "ours \(counters), kernel after its recovery \(kernelCounters)")
        }
        if counters.unlinkedInodes == 0 {
            #expect(counters.freeBlocks == kernelCounters.freeBlocks, "ours \(counters), kernel \(kernelCounters)")
        } else {
            #expect(counters.freeBlocks <= kernelCounters.freeBlocks, "ours \(counters), kernel \(kernelCounters)")
        }
        try? FileManager.default.removeItem(atPath: kernelCopy)
        try? FileManager.default.removeItem(atPath: oursCopy)
        return result.report
    }

    /// v5 defaults; 2 KiB inodes (larger inode clusters for icreate, room for big forks);
    /// legacy 32-bit timestamps and no finobt; 64-bit extent counters (nrext64).
    static let mkfsVariants = ["-l size=16m", "-l size=16m -i size=2048", "-l size=16m -m bigtime=0,finobt=0,inobtcount=0",
                               "-l size=16m -i nrext64=1"]

    @Test(arguments: mkfsVariants)
    func workloadReplaysAsTheKernelDoes(mkfs: String) throws {
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "work.img", mkfs: mkfs, workload: XFSLogTest.workload)
        let report = try recoverAndCompare(image, in: dir)
        #expect(report.transactions > 10, "\(report)")
        #expect(report.buffersReplayed > 0 && report.inodesReplayed > 0, "\(report)")
        #expect(report.inodeChunksCreated > 0, "\(report)")
        #expect(report.tornAt == nil)
    }

    @Test func bigIclogsWithExtendedHeadersReplayAsTheKernelDoes() throws {
        // 256 KiB log buffers (logbsize=256k, a 256 KiB log stripe unit): each record has
        // eight header blocks, the extra seven holding the saved cycle words of its data past
        // the first 32 KiB. 1 KiB blocks on top.
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "big.img", mkfs: "-l size=16m,su=256k -b size=1024 -i size=512",
                                              workload: XFSLogTest.workload, mountOptions: "logbsize=256k")
        let sb = try RawImage(path: image, writable: false).readBytes(at: 0, count: 512)
        let layout = try XFSLogLayout.parse(superblock: sb, geometry: try XFSLogTest.geometry(sb), deviceSize: 160 << 20)
        let report = try recoverAndCompare(image, in: dir)
        let reader = XFSLogReader(device: try RawImage(path: image, writable: false), layout: layout)
        let last = try reader.findRecordHeader(before: report.head, limit: 4096)
        #expect(last.headerBlocks == 8 && last.dataBlocks > 64, "\(last.headerBlocks) header blocks, \(last.dataBlocks) data blocks")
        #expect(report.inodesReplayed > 0, "\(report)")
    }

    @Test func buffersFreedAndReusedAreCancelled() throws {
        // Directory blocks freed (rm of a whole large directory) and reused leave cancel records.
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "cancel.img", workload: """
            mkdir d; for i in $(seq 1 400); do : > d/name-number-$i; done
            sync
            rm -r d
            mkdir e; for i in $(seq 1 300); do echo $i > e/other-$i; done
            rm -r e
            mkdir f; for i in $(seq 1 50); do echo $i > f/x$i; done
            """)
        let report = try recoverAndCompare(image, in: dir)
        #expect(report.buffersCancelled > 0, "\(report)")
    }

    @Test func aLogThatWrapsReplaysAsTheKernelDoes() throws {
        // The smallest log mkfs allows for this size, and enough metadata churn to go round it
        // more than once before the crash.
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "wrap.img", mkfs: "-l size=1400b", workload: """
            for round in $(seq 1 14); do
              mkdir r$round
              (cd r$round && seq 1 2000 | sed 's/^/file-with-a-longer-name-/' | xargs touch)
              (cd r$round && seq 1 3 2000 | sed 's/^/file-with-a-longer-name-/' | xargs rm)
              sync
            done
            for i in $(seq 1 100); do setfattr -n user.x$i -v $i r14/file-with-a-longer-name-2; done
            rm -r r3
            """)
        let report = try recoverAndCompare(image, in: dir)
        #expect(report.headCycle >= 2, "the log must have wrapped: \(report)")
    }

    @Test func reflinkAndRmapWorkloadReplaysAsTheKernelDoes() throws {
        // Reflink copies, copy-on-write overwrites and frees go through deferred work: BUI/BUD,
        // CUI/CUD, RUI/RUD and EFI/EFD intents in the log next to the buffers they change.
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "reflink.img", mkfs: "-l size=16m -m reflink=1,rmapbt=1", workload: """
            mkdir s; for i in $(seq 1 20); do dd if=/dev/urandom of=s/f$i bs=64k count=4 status=none; done
            sync
            for i in $(seq 1 20); do cp --reflink=always s/f$i s/c$i; done
            for i in $(seq 1 20 | sed -n '1~2p'); do dd if=/dev/urandom of=s/c$i bs=4k count=3 seek=5 conv=notrunc status=none; done
            for i in $(seq 1 20 | sed -n '1~3p'); do rm s/f$i; done
            sync
            for i in $(seq 1 10); do cp --reflink=always s/c2 s/d$i; done
            rm s/c4 s/c6
            """)
        let report = try recoverAndCompare(image, in: dir)
        #expect(report.transactions > 0 && report.buffersReplayed > 0, "\(report)")
        // Intents whose done item lands in the same checkpoint are never written (the CIL's
        // intent whiteouts), so this log holds few or none: see the next test.
    }

    @Test func intentsInTheLogArePairedWithTheirDoneItems() throws {
        // Removing a file of 6000 extents frees them in a long chain of transactions, each
        // with an EFI and its EFD; log forces in between put the intents on disk, and the
        // shutdown lands in the middle of the chain. Where the shutdown lands depends on the
        // machine's load, so the workload is retried with later shutdowns until the log holds
        // intents (every attempt is still compared with the kernel's recovery).
        let dir = try TempDir("xfs-log")
        var intents: [String: Int] = [:]
        for attempt in 0 ..< 5 where intents["EFI", default: 0] == 0 {
            let wait = String(format: "%.1f", 0.3 + 0.4 * Double(attempt))
            let image = try XFSLogTest.dirtyImage(in: dir, name: "efi\(attempt).img", workload: """
                M=$PWD
                xfs_io -f -c 'falloc 0 50m' frag
                seq 0 2 12000 | awk '{ printf "-c\\nfpunch %dk 4k\\n", $1 * 4 }' | tr '\\n' '\\0' | xargs -0 xfs_io frag
                test "$(xfs_bmap frag | wc -l)" -gt 6000
                mkdir d; echo kept > d/kept
                sync
                (cd / && while sync -f "$M" 2>/dev/null; do :; done) < /dev/null > /dev/null 2>&1 &
                sleep 0.2
                (cd / && rm -f "$M/frag") < /dev/null > /dev/null 2>&1 &
                sleep \(wait)
                xfs_io -x -c 'shutdown -f' "$M"
                wait
                """, shutsDownItself: true)
            intents = try recoverAndCompare(image, in: dir).intentItems
        }
        #expect(intents["EFI", default: 0] > 0 && intents["EFD", default: 0] > 0, "\(intents)")
    }

    @Test func aCleanLogNeedsNoRecovery() throws {
        let dir = try TempDir("xfs-log")
        let image = dir.file("clean.img")
        try XFSLogTest.makeFilesystem(image, "-l size=16m")
        #expect(try XFSLogTest.recover(image) == nil, "fresh mkfs")
        let mnt = dir.file("m")
        try Shell.check("mkdir -p \(mnt) && mount -o loop \(image) \(mnt) && mkdir \(mnt)/d && echo x > \(mnt)/d/f && umount \(mnt)")
        #expect(try XFSLogTest.recover(image) == nil, "unmounted cleanly")
    }

    @Test func aTornRecordAtTheHeadEndsTheLogThere() throws {
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "torn.img", workload: """
            mkdir a; for i in $(seq 1 100); do echo $i > a/f$i; done
            sync
            for i in $(seq 1 30); do mv a/f$i a/g$i; done
            """)
        // Damage one byte in the data of the last record before the head.
        let clean = try #require(try XFSLogTest.recover(image))
        let device = try RawImage(path: image, writable: false)
        let sb = try device.readBytes(at: 0, count: 512)
        let layout = try XFSLogLayout.parse(superblock: sb, geometry: try XFSLogTest.geometry(sb), deviceSize: device.size)
        let reader = XFSLogReader(device: device, layout: layout)
        let last = try reader.findRecordHeader(before: clean.report.head, limit: 4096)
        let victim = layout.byteOffset(layout.wrap(UInt64(last.block) + UInt64(last.headerBlocks))) + 100
        try Shell.check("printf '\\377' | dd of=\(image) bs=1 seek=\(victim) conv=notrunc status=none")
        let report = try recoverAndCompare(image, in: dir)
        #expect(report.tornAt == last.block, "\(report)")
        #expect(report.head == last.block)
    }

    @Test func garbageAndTruncatedLogsFailInOneLine() throws {
        let dir = try TempDir("xfs-log")
        let image = try XFSLogTest.dirtyImage(in: dir, name: "bad.img", workload: "mkdir a; echo x > a/f")
        let sb = try RawImage(path: image, writable: false).readBytes(at: 0, count: 512)
        let geometry = try XFSLogTest.geometry(sb)
        let layout = try XFSLogLayout.parse(superblock: sb, geometry: geometry, deviceSize: 160 << 20)

        // The device ends inside the log.
        let cut = dir.file("cut.img")
        try Shell.check("cp --sparse=always \(image) \(cut) && truncate -s \(layout.startByte + 4096) \(cut)")
        #expect(throws: ImageError.self) { try XFSLogTest.recover(cut) }

        // Random bytes over the whole log: an error naming the log, not a crash or a hang.
        let garbage = dir.file("garbage.img")
        try Shell.check("cp --sparse=always \(image) \(garbage) && head -c \(UInt64(layout.blocks) * 512) /dev/urandom | " +
                        "dd of=\(garbage) bs=1M seek=\(layout.startByte) oflag=seek_bytes conv=notrunc status=none")
        let start = Date()
        do {
            let result = try XFSLogTest.recover(garbage)
            #expect(result == nil, "garbage recovered into \(String(describing: result?.report))")
        } catch let error as ImageError {
            #expect(error.description.contains("log"), "\(error)")
        }
        #expect(Date().timeIntervalSince(start) < 10)

        // Records whose headers are kept but whose data is garbage: CRC failures, no crash.
        let scrambled = dir.file("scrambled.img")
        try Shell.check("cp --sparse=always \(image) \(scrambled)")
        let device = try RawImage(path: scrambled, writable: false)
        let reader = XFSLogReader(device: device, layout: layout)
        var block: UInt32 = 0
        var offsets: [UInt64] = []
        while block < 64 {
            if let r = try? XFSLogRecordHeader(try reader.read(block, count: 1), block: block, layout: layout, structureOffset: 0) {
                offsets.append(layout.byteOffset(block + 1) + 200)
                block += UInt32(r.totalBlocks)
            } else { block += 1 }
        }
        #expect(!offsets.isEmpty)
        for offset in offsets {
            try Shell.check("printf 'garbage' | dd of=\(scrambled) bs=1 seek=\(offset) conv=notrunc status=none")
        }
        do { _ = try XFSLogTest.recover(scrambled) } catch is ImageError {}
    }
}
