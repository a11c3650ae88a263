import Foundation

/// Filesystems whose journal needs recovery, made the way a crashed VM leaves them, built once
/// per run. Tests copy them before changing anything.
///
/// Each image is made in three steps:
/// 1. the kernel's ext4 driver mounts a fresh filesystem (loop, `commit=600` so only our
///    `sync`s commit), makes two rounds of changes with a `sync` after each, and the image file
///    is copied while still mounted: its journal holds the kernel's committed transactions
///    (csum v3 when the filesystem has metadata_csum) and `needs_recovery` is set;
/// 2. the home location of every block the journal logged is put back to its contents from
///    before the mount (except the superblock), as if the kernel had not yet written it back,
///    so replay has real work to do;
/// 3. debugfs appends five transactions (`jo`/`jw`/`jc`) that overwrite blocks of
///    /data/target.bin: T+1 block 0, T+2 blocks 1 and 2, T+3 block 0 again, T+4 revokes block 2,
///    T+5 block 3 with contents that begin with the jbd2 magic (an escaped block).
public enum JournalFixtures {
    public struct Variant: Sendable {
        public let name: String
        public let type: String
        public let options: String
        public let blockSize: Int
    }

    /// ext3 and ext4, 1k and 4k blocks, with and without metadata_csum (csum v3 journal) and 64bit.
    public static let variants: [Variant] = [
        Variant(name: "ext3-1k", type: "ext3", options: "-b 1024", blockSize: 1024),
        Variant(name: "ext3-4k", type: "ext3", options: "-b 4096", blockSize: 4096),
        Variant(name: "ext4-4k", type: "ext4", options: "-b 4096", blockSize: 4096),
        Variant(name: "ext4-1k", type: "ext4", options: "-b 1024", blockSize: 1024),
        Variant(name: "ext4-nocsum-32bit", type: "ext4", options: "-b 4096 -O ^metadata_csum,^64bit", blockSize: 4096),
    ]

    public struct DirtyImage: Sendable {
        public let path: String
        public let variant: Variant
        /// The blocks of /data/target.bin, in file order.
        public let targetBlocks: [UInt64]
        /// /data/target.bin as it must read after replay.
        public let expectedTarget: Data
        /// /data/target.bin as the source tree had it (what the image shows without replay).
        public let originalTarget: Data
    }

    /// The source tree of every journal image.
    public static let sourceTree: String = {
        do {
            let dir = Fixtures.scratch.file("journal-tree")
            try Shell.check("mkdir -p \(Shell.quote(dir))/data \(Shell.quote(dir))/etc")
            var rng = SplitMix64(seed: 0x10_0A1)
            let target = Data((0..<16384).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            try target.write(to: URL(fileURLWithPath: dir + "/data/target.bin"))
            try Data("before the crash\n".utf8).write(to: URL(fileURLWithPath: dir + "/data/changed.txt"))
            try Data("to be removed\n".utf8).write(to: URL(fileURLWithPath: dir + "/data/gone.txt"))
            try Data("renamed\n".utf8).write(to: URL(fileURLWithPath: dir + "/data/old-name"))
            try Data("journal-guest\n".utf8).write(to: URL(fileURLWithPath: dir + "/etc/hostname"))
            return dir
        } catch { fatalError("cannot build the journal source tree: \(error)") }
    }()

    /// Bytes of the blocks debugfs writes, `blockSize` each.
    public static func debugfsBlock(_ label: String, fill: UInt8, blockSize: Int, escaped: Bool = false) -> Data {
        var bytes = Data(label.utf8)
        if escaped { bytes = Data([0xC0, 0x3B, 0x39, 0x98]) + bytes }
        bytes.append(Data(repeating: fill, count: blockSize - bytes.count))
        return bytes
    }

    private static let built = Locked<[String: DirtyImage]>([:])

    /// The dirty image for `variant`, built once per run.
    public static func dirty(_ variant: Variant) throws -> DirtyImage {
        try built.withValue { cache in
            if let image = cache[variant.name] { return image }
            let image = try build(variant)
            cache[variant.name] = image
            return image
        }
    }

    private static func build(_ v: Variant) throws -> DirtyImage {
        let dir = Fixtures.scratch.file("journal-" + v.name)
        try Shell.check("rm -rf \(Shell.quote(dir)) && mkdir -p \(Shell.quote(dir))/mnt")
        let q = { (name: String) in Shell.quote(dir + "/" + name) }
        let live = dir + "/live.img", before = dir + "/before.img", crash = dir + "/dirty.img"
        try Shell.check("truncate -s 48M \(q("live.img")) && mke2fs -F -q -t \(v.type) \(v.options) " +
                        "-d \(Shell.quote(sourceTree)) \(q("live.img")) && cp --sparse=always \(q("live.img")) \(q("before.img"))")
        // 1. The kernel writes two transactions; the image is copied while mounted.
        try Shell.check("mount -t ext4 -o loop,commit=600 \(q("live.img")) \(q("mnt"))")
        do {
            try Shell.check("""
                cd \(q("mnt")) && printf 'after the crash\\n' > data/changed.txt && mkdir new && \
                for i in $(seq 1 40); do printf 'file %d\\n' $i > new/f$i; done && rm data/gone.txt && \
                mv data/old-name data/new-name && sync && \
                mkdir new2 && printf 'second round\\n' > new2/file && printf 'more\\n' >> new/f1 && sync && \
                cp --sparse=always \(Shell.quote(live)) \(Shell.quote(crash))
                """)
        } catch {
            _ = try? Shell.run("umount \(q("mnt"))")
            throw error
        }
        try Shell.check("umount \(q("mnt"))")
        // 2. Home locations of logged blocks go back to their old contents (not the superblock).
        let superblockBlock: UInt64 = v.blockSize == 1024 ? 1 : 0
        for block in try loggedBlocks(crash) where block != superblockBlock {
            try Shell.check("dd if=\(Shell.quote(before)) of=\(Shell.quote(crash)) bs=\(v.blockSize) skip=\(block) seek=\(block) " +
                            "count=1 conv=notrunc status=none")
        }
        // 3. debugfs appends five transactions over /data/target.bin.
        let blocks = try (0..<UInt64(16384 / v.blockSize)).prefix(4).map { try blockOf(crash, "/data/target.bin", $0) }
        let b = v.blockSize
        try debugfsBlock("T1 block0", fill: 0x61, blockSize: b).write(to: URL(fileURLWithPath: dir + "/n1"))
        try (debugfsBlock("T2 block1", fill: 0x62, blockSize: b) + debugfsBlock("T2 block2", fill: 0x63, blockSize: b))
            .write(to: URL(fileURLWithPath: dir + "/n2"))
        try debugfsBlock("T3 block0", fill: 0x64, blockSize: b).write(to: URL(fileURLWithPath: dir + "/n3"))
        try debugfsBlock("escaped", fill: 0x65, blockSize: b, escaped: true).write(to: URL(fileURLWithPath: dir + "/ne"))
        let script = """
            jo
            jw -b \(blocks[0]) \(dir)/n1
            jw -b \(blocks[1]),\(blocks[2]) \(dir)/n2
            jw -b \(blocks[0]) \(dir)/n3
            jw -r \(blocks[2]) /dev/null
            jw -b \(blocks[3]) \(dir)/ne
            jc

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: dir + "/script"))
        try Shell.check("debugfs -w -f \(q("script")) \(Shell.quote(crash)) >/dev/null 2>&1")
        try Shell.check("rm -f \(Shell.quote(live)) \(Shell.quote(before))")

        let original = try Data(contentsOf: URL(fileURLWithPath: sourceTree + "/data/target.bin"))
        var expected = debugfsBlock("T3 block0", fill: 0x64, blockSize: b) + debugfsBlock("T2 block1", fill: 0x62, blockSize: b)
        expected += original[(2 * b)..<(3 * b)]
        expected += debugfsBlock("escaped", fill: 0x65, blockSize: b, escaped: true)
        expected += original[(4 * b)...]
        return DirtyImage(path: crash, variant: v, targetBlocks: blocks, expectedTarget: Data(expected),
                          originalTarget: original)
    }

    /// The filesystem blocks `debugfs logdump -a` lists as logged in the journal.
    public static func loggedBlocks(_ image: String) throws -> [UInt64] {
        let dump = try Shell.check("debugfs -R 'logdump -a' \(Shell.quote(image)) 2>/dev/null")
        return dump.split(separator: "\n").compactMap { line -> UInt64? in
            let words = line.split(separator: " ")
            guard words.count > 3, words[0] == "FS", words[1] == "block" else { return nil }
            return UInt64(words[2])
        }
    }

    /// The physical block of logical block `index` of `path` (debugfs bmap).
    public static func blockOf(_ image: String, _ path: String, _ index: UInt64) throws -> UInt64 {
        let text = try Shell.check("debugfs -R 'bmap \(path) \(index)' \(Shell.quote(image)) 2>/dev/null")
        guard let block = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), block > 0 else {
            throw Shell.Failure(command: "debugfs bmap \(path) \(index)", status: -1, stderr: text)
        }
        return block
    }

    /// A copy of `image` in `dir`, recovered by `e2fsck -E journal_only -y`: the oracle.
    public static func e2fsckReplayed(_ image: String, in dir: TempDir, name: String = "oracle.img") throws -> String {
        let copy = dir.file(name)
        try Shell.check("cp --sparse=always \(Shell.quote(image)) \(Shell.quote(copy))")
        let result = try Shell.run("e2fsck -E journal_only -y \(Shell.quote(copy))")
        guard result.status == 0 || result.status == 1 else {
            throw Shell.Failure(command: "e2fsck -E journal_only -y", status: result.status, stderr: result.text + result.stderr)
        }
        return copy
    }

    /// A copy of `image` in `dir`.
    public static func copy(_ image: String, in dir: TempDir, name: String = "copy.img") throws -> String {
        let copy = dir.file(name)
        try Shell.check("cp --sparse=always \(Shell.quote(image)) \(Shell.quote(copy))")
        return copy
    }

    /// The primary superblock's `s_feature_incompat` and `s_state` in `bytes` of a whole image.
    public static func superblockFlags(_ bytes: Data) -> (incompat: UInt32, state: UInt16) {
        func le(_ offset: Int, _ width: Int) -> UInt64 {
            (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[bytes.startIndex + offset + $1]) << (8 * UInt64($1)) }
        }
        return (UInt32(le(1024 + 0x60, 4)), UInt16(le(1024 + 0x3A, 2)))
    }
}
