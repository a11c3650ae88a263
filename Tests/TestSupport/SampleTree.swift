import Foundation

/// A host directory tree that exercises what ext2/3/4 can hold, written deterministically,
/// from which tests build images with `mke2fs -d` and against which they compare results.
public final class SampleTree: @unchecked Sendable {
    public let root: String
    private let holder: TempDir

    /// Paths (relative) of files whose content tests compare byte for byte.
    public private(set) var regularFiles: [String] = []
    /// Relative path of the sparse file and the byte ranges that hold data.
    public let sparseFile = "data/sparse.bin"
    public let bigDirectory = "many"
    public let bigDirectoryCount: Int

    /// Builds the tree. `manyEntries` sets the size of the large (htree) directory.
    public init(manyEntries: Int = 600) throws {
        holder = try TempDir("imagemount-tree")
        root = holder.path + "/root"
        bigDirectoryCount = manyEntries
        var rng = SplitMix64(seed: 0x1D_2026)
        let fm = FileManager.default
        func mkdir(_ p: String) throws { try fm.createDirectory(atPath: root + "/" + p, withIntermediateDirectories: true) }
        func write(_ p: String, _ data: Data) throws {
            try data.write(to: URL(fileURLWithPath: root + "/" + p))
            regularFiles.append(p)
        }
        func random(_ n: Int) -> Data { Data((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
        try mkdir("etc")
        try mkdir("data/deep/er/still")
        try mkdir(bigDirectory)
        try mkdir("modes")
        try write("etc/hostname", Data("sample-guest\n".utf8))
        try write("etc/fstab", Data("UUID=0 / ext4 defaults 0 1\n".utf8))
        try write("data/empty", Data())
        try write("data/one", Data("x".utf8))
        for size in [4095, 4096, 4097, 65_537, 1_048_579] { try write("data/r\(size)", random(size)) }
        try write("data/deep/er/still/leaf.txt", Data("deep leaf\n".utf8))
        // A name that is not UTF-8 (Latin-1 0xE9): ext4 names are bytes.
        try Shell.check("printf 'odd name\\n' > \"$(printf '\(root)/data/caf\\351-latin1')\"")
        for i in 0..<manyEntries { try write("\(bigDirectory)/entry-\(String(format: "%05d", i))", Data("\(i)\n".utf8)) }
        // Sparse: data at 0, at 1 MiB + 3 and at the end of a 5 MiB file.
        let sparse = root + "/" + sparseFile
        fm.createFile(atPath: sparse, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: sparse))
        for (offset, size) in [(0, 5000), (1_048_579, 7000), (5 * 1_048_576 - 100, 100)] {
            try handle.seek(toOffset: UInt64(offset))
            handle.write(random(size))
        }
        try handle.close()
        regularFiles.append(sparseFile)
        try Shell.check("""
            cd \(Shell.quote(root)) && \
            ln -s hostname etc/fast-link && \
            ln -s /data/deep/er/still/leaf.txt/../../../../../etc/../data/deep/er/still/leaf.txt data/slow-link && \
            ln -s /etc/hostname abs-link && ln -s nowhere dangling && \
            ln data/one data/one-hardlink && ln data/one modes/one-third-link && \
            mkfifo data/fifo && mknod data/null c 1 3 && mknod data/loop b 7 200 && \
            chmod 4755 modes/ 2>/dev/null; printf s > modes/setuid && chmod 4711 modes/setuid && \
            printf t > modes/private && chmod 600 modes/private && mkdir modes/sticky && chmod 1777 modes/sticky && \
            chown 1000:1000 data/one && chown 0:65534 modes/private && chown -h 42:43 dangling && \
            setfattr -n user.comment -v 'hello xattr' etc/hostname && \
            setfattr -n user.binary -v 0x00ff10 data/one && \
            setfattr -n trusted.secret -v shh modes/private && \
            touch -h -d '2001-02-03 04:05:06' dangling && touch -d '1999-12-31 23:59:59' data/r4096
            """)
        regularFiles += ["modes/setuid", "modes/private"]
    }

    /// Builds an ext image of `size` from the tree with mke2fs -d.
    /// `type` is "ext2", "ext3" or "ext4"; `options` are extra mke2fs arguments.
    public func makeImage(at path: String, type: String, options: String = "", size: String = "64M") throws {
        try Shell.check("rm -f \(Shell.quote(path)) && truncate -s \(size) \(Shell.quote(path)) && " +
                        "mke2fs -F -q -t \(type) \(options) -d \(Shell.quote(root)) \(Shell.quote(path))")
    }
}

/// A small deterministic generator, so test data is the same on every run.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Test fixtures built once per test run and shared by every suite.
public enum Fixtures {
    /// The sample tree.
    public static let tree: SampleTree = {
        do { return try SampleTree() } catch { fatalError("cannot build the sample tree: \(error)") }
    }()

    /// A scratch directory for the whole run.
    /// Removed when the test process exits (static values are never deinitialised).
    public static let scratch: TempDir = {
        do {
            let dir = try TempDir("imagemount-fixtures")
            atexit { try? FileManager.default.removeItem(atPath: Fixtures.scratch.path) }
            return dir
        } catch { fatalError("no scratch directory: \(error)") }
    }()

    private static let built = Locked<[String: String]>([:])

    /// An image of the sample tree, built once per (name) and then reused.
    public static func image(_ name: String, type: String, options: String = "", size: String = "64M") throws -> String {
        try built.withValue { cache in
            if let path = cache[name] { return path }
            let path = scratch.file(name + ".img")
            try tree.makeImage(at: path, type: type, options: options, size: size)
            cache[name] = path
            return path
        }
    }

    /// A qcow2 conversion of image `raw` made once with `qemu-img convert -O qcow2 OPTIONS`
    /// (e.g. "-c -o cluster_size=4096"), so the same checks run on qcow2 as on raw.
    public static func qcow2(_ raw: String, options: String = "") throws -> String {
        let key = raw + "|" + options
        return try built.withValue { cache in
            if let path = cache[key] { return path }
            let path = scratch.file("conv-\(cache.count).qcow2")
            try Shell.check("qemu-img convert -O qcow2 \(options) \(Shell.quote(raw)) \(Shell.quote(path))")
            cache[key] = path
            return path
        }
    }

    /// qcow2 shapes the foundation tests also run on: (label, qemu-img convert options).
    public static let qcow2Variants: [(name: String, options: String)] = [
        ("plain-64k", ""),
        ("zlib-4k", "-c -o cluster_size=4096"),
        ("zstd-2M", "-c -o compression_type=zstd,cluster_size=2097152"),
        ("v2-512", "-o compat=0.10,cluster_size=512"),
    ]

    /// The filesystem variants the foundation issue asks for: (name, type, mke2fs options).
    public static let extVariants: [(name: String, type: String, options: String)] = [
        ("ext2", "ext2", ""),
        ("ext3", "ext3", ""),
        ("ext4", "ext4", ""),
        ("ext4-inline", "ext4", "-O inline_data"),
        ("ext4-1k", "ext4", "-b 1024"),
        ("ext2-1k", "ext2", "-b 1024"),
    ]
}
