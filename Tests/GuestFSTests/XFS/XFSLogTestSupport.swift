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

/// Dirty XFS logs made by the kernel, and the two views compared in XFSLogRecoveryTests: the
/// kernel's own recovery of a copy, and a copy with our overlay's chunks written over it,
/// mounted `ro,norecovery`.
enum XFSLogTest {
    /// A test-only reading of superblock 0 into XFSGeometry (the driver's own parser lives on
    /// the xfs-read branch). Offsets from xfs_format.h `struct xfs_dsb`.
    static func geometry(_ sb: [UInt8]) throws -> XFSGeometry { try FuzzHarness.xfsGeometry(sb) }

    /// Runs recovery on the image file at `path` (opened read-only).
    static func recover(_ path: String) throws -> (overlay: MemoryOverlayDevice, report: XFSLogReport)? {
        let device = try RawImage(path: path, writable: false)
        let sb = try device.readBytes(at: 0, count: 512)
        return try XFSLogRecovery.recover(device: device, superblock: sb, geometry: try geometry(sb))
    }

    /// Writes every chunk the overlay holds onto the file at `path` (a copy of its base).
    static func apply(_ overlay: MemoryOverlayDevice, to path: String) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        for range in overlay.modifiedRanges {
            let bytes = try overlay.readBytes(at: range.offset, count: range.length)
            try handle.seek(toOffset: range.offset)
            try handle.write(contentsOf: Data(bytes))
        }
    }

    /// Makes a v5 XFS in `dir`/`name`, mounts it, runs `workload` (a shell script run in the
    /// mount point), then shuts the filesystem down with the log forced (`xfs_io -x -c
    /// 'shutdown -f'`) and unmounts: the log holds what the kernel committed and nothing was
    /// written back after that.
    /// A workload that shuts the filesystem down itself (to crash in the middle of work it runs
    /// in the background, and `wait`s for it: background work must end before the script
    /// does, as it would hold the script's output open) passes `shutsDownItself`.
    static func dirtyImage(in dir: TempDir, name: String, mkfs: String = "-l size=16m", workload: String,
                           shutsDownItself: Bool = false, mountOptions: String = "") throws -> String {
        let image = dir.file(name)
        try makeFilesystem(image, mkfs)
        let mnt = dir.file(name + ".mnt")
        try Shell.check("mkdir -p \(mnt) && mount -o loop\(mountOptions.isEmpty ? "" : "," + mountOptions) \(image) \(mnt)")
        let run = try Shell.run("cd \(mnt) && set -e\n" + workload)
        let shut = shutsDownItself ? run : try Shell.run("xfs_io -x -c 'shutdown -f' \(mnt)")
        // Work the script left running in the background fails at once on the shut-down
        // filesystem; give it a moment to let go of the mount.
        try Shell.check("for i in 1 2 3 4 5 6 7 8 9 10; do umount \(mnt) 2>/dev/null && exit 0; sleep 0.5; done; umount \(mnt)")
        guard run.status == 0 else { throw Shell.Failure(command: "workload", status: run.status, stderr: run.stderr) }
        guard shut.status == 0 else { throw Shell.Failure(command: "shutdown", status: shut.status, stderr: shut.stderr) }
        return image
    }

    /// mkfs.xfs on a 160 MiB file. mkfs refuses filesystems under 300 MB and logs under 64 MiB
    /// unless it believes it runs under fstests (TEST_DIR, TEST_DEV and QA_CHECK_FS all set); small logs are what make a log
    /// wrap in a test's time.
    static func makeFilesystem(_ image: String, _ options: String) throws {
        try Shell.check("truncate -s 160M \(image) && TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f \(options) \(image)")
    }

    static func copy(_ from: String, _ to: String) throws {
        try Shell.check("cp --sparse=always \(from) \(to)")
    }

    /// Everything a user sees of the tree under `mount`: per entry the path, type, mode,
    /// owner, size, the three times to the nanosecond, link count, inode number and symlink
    /// target; every xattr; every file's sha256.
    /// Errors (an entry whose inode cannot be read) are part of the listing, so they show as
    /// differences rather than stopping the test.
    static func listing(_ mount: String) throws -> String {
        let stats = try Shell.check("cd \(mount) && (find . -printf '%p|%y|%m|%U|%G|%s|%A@|%T@|%C@|%n|%i|%l\\n' 2>&1 || true) | LC_ALL=C sort")
        let xattrs = try Shell.check("cd \(mount) && (find . -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m - -e hex --absolute-names 2>&1 || true)")
        let sums = try Shell.check("cd \(mount) && (find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum 2>&1 || true)")
        return stats + "\n" + xattrs + "\n" + sums
    }

    /// The listing of `image` under a kernel mount with `options`.
    static func kernelListing(_ image: String, options: String, in dir: TempDir) throws -> String {
        let mnt = dir.file("view.\(UUID().uuidString.prefix(8))")
        try Shell.check("mkdir -p \(mnt) && mount -o loop,\(options) \(image) \(mnt)")
        defer { _ = try? Shell.run("umount \(mnt); rmdir \(mnt)") }
        return try listing(mnt)
    }

    /// sb_icount, sb_ifree, sb_fdblocks of the image file at `path`.
    static func superblockCounters(_ path: String) throws -> XFSSummaryCounters {
        let b = XFSBytes(try RawImage(path: path, writable: false).readBytes(at: 0, count: 512), structure: "superblock")
        return XFSSummaryCounters(inodeCount: try b.u64(128), freeInodes: try b.u64(136), freeBlocks: try b.u64(144))
    }

    /// Writes the counters into the superblock of the image file at `path`, CRC restamped.
    static func writeCounters(_ c: XFSSummaryCounters, to path: String) throws {
        let device = try RawImage(path: path, writable: true)
        var sb = try device.readBytes(at: 0, count: 512)
        for (offset, value) in [(128, c.inodeCount), (136, c.freeInodes), (144, c.freeBlocks)] {
            for i in 0 ..< 8 { sb[offset + i] = UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64(i))) }
        }
        let crc = XFSChecksum.compute(sb, crcOffset: 224)
        for i in 0 ..< 4 { sb[224 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
        try device.writeBytes(sb, at: 0)
        try device.flush()
    }

    /// What `xfs_repair -n` finds wrong with the image at `path`, without its progress lines.
    static func repairComplaints(_ path: String) throws -> [String] {
        let out = try Shell.run("xfs_repair -n \(path) 2>&1")
        let noise = ["Phase ", "- ", "Cannot get host filesystem geometry", "Repair may fail if there is a sector size",
                     "the image and the host filesystem", "No modify flag set", ""]
        return out.text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { line in !noise.contains { $0.isEmpty ? line.isEmpty : line.hasPrefix($0) } }
    }

    static func sha256(_ path: String) throws -> String {
        String(try Shell.check("sha256sum \(path)").prefix(64))
    }

    /// The first line where two listings differ, for a readable failure.
    static func firstDifference(_ a: String, _ b: String) -> String? {
        let la = a.split(separator: "\n", omittingEmptySubsequences: false)
        let lb = b.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0 ..< max(la.count, lb.count) {
            let x = i < la.count ? String(la[i]) : "<end>", y = i < lb.count ? String(lb[i]) : "<end>"
            if x != y { return "line \(i): ours \(x) | kernel \(y)" }
        }
        return nil
    }

    /// Creates, overwrites, renames, deletes, xattrs in every form, mkdir/rmdir, links, a
    /// large directory and a fragmented file, with a sync in the middle so part of the log is
    /// already on disk (the LSN checks skip it).
    static let workload = """
        mkdir -p a/b gone keep
        for i in $(seq 1 60); do echo "file $i" > a/f$i; done
        dd if=/dev/urandom of=a/big bs=64k count=16 status=none
        setfattr -n user.early -v before a/f5
        sync
        echo overwritten > a/f1
        mv a/f2 a/b/moved
        rm a/f3 a/f4
        rmdir gone
        setfattr -n user.k -v hello a/f5
        setfattr -n trusted.t -v 0x00ff a/f6
        for i in $(seq 1 40); do setfattr -n user.long$i -v "$(printf 'v%.0s' $(seq 1 40))" a/f7; done
        ln -s /target/of/symlink a/sym
        ln a/f8 keep/hard
        chmod 4755 a/f9; chown 1234:5678 a/f10
        mkdir many; for i in $(seq 1 700); do : > many/entry-with-a-long-name-$i; done
        rm many/entry-with-a-long-name-1*
        for i in $(seq 0 2 60); do dd if=/dev/urandom of=a/frag bs=4k seek=$i count=1 conv=notrunc status=none; sync -d a/frag; done
        truncate -s 10000 a/big
        mkdir tmpdir; touch tmpdir/x; rm -r tmpdir
        """
}
