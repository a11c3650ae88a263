import Foundation
import TestSupport

/// The fixture folder, removed when the test process exits (a static is never deinitialized).
private let fixtureFolder = Locked<String?>(nil)

/// The qcow2 test matrix, built once per test run with qemu-img and qemu-io, with the raw image
/// `qemu-img convert -O raw` makes of each (the oracle).
final class Qcow2Fixtures: Sendable {
    let dir: TempDir
    private let oracleLock = NSLock()
    /// Virtual size of every image: not a multiple of any cluster size, so last clusters are partial.
    static let virtualSize = 5 * 1024 * 1024 + 1536

    /// Images compared whole and at random offsets against their oracle.
    static let matrix: [String] = [
        "v2-64k.qcow2", "v3-512.qcow2", "v3-4k.qcow2", "v3-64k.qcow2", "v3-2m.qcow2",
        "extl2-64k.qcow2", "extl2-backed.qcow2",
        "zlib-64k.qcow2", "zlib-4k.qcow2", "zstd-64k.qcow2", "zstd-2m.qcow2",
        "extdata.qcow2", "extdata-raw.qcow2",
        "mid.qcow2", "top.qcow2",
        "snap.qcow2",
    ]
    /// (image, snapshot as named on the command line, snapshot name for the oracle).
    static let snapshots: [(image: String, snapshot: String, oracleName: String)] = [
        ("snap.qcow2", "one", "one"), ("snap.qcow2", "two", "two"), ("snap.qcow2", "1", "one"),
    ]

    /// Guest writes applied on top of most images: unaligned data, zeroed and discarded ranges,
    /// the last bytes of the disk. Sizes are chosen to straddle 512 B, 4 KiB and 64 KiB edges.
    static let commonWrites = [
        "write -P 0x33 1000001 5000", "write -z 40k 30k", "discard 2560k 128k", "write -z -u 3M 64k",
        "write -P 0x55 5241344 3072", "write -P 0x5a 130000 1", "write -z 4000000 1000",
    ]

    private static let built: Result<Qcow2Fixtures, any Error> = Result { try Qcow2Fixtures() }

    /// The fixtures, built on first use.
    static func get() throws -> Qcow2Fixtures { try built.get() }

    func path(_ name: String) -> String { dir.file(name) }

    /// The oracle bytes of `image` (or of one of its snapshots).
    func oracle(_ image: String, snapshot: String? = nil) throws -> [UInt8] {
        let out = dir.file("\(image).\(snapshot ?? "active").raw")
        // One conversion at a time: tests running in parallel may ask for the same oracle.
        oracleLock.lock()
        defer { oracleLock.unlock() }
        if !FileManager.default.fileExists(atPath: out) {
            let l = snapshot.map { "-l snapshot.name=\(Shell.quote($0)) " } ?? ""
            // From the image's folder: QEMU 7.2 resolves external data file names against the
            // current directory, imagemount (like newer QEMU) against the image's folder.
            try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img convert \(l)-O raw \(Shell.quote(path(image))) \(Shell.quote(out)).tmp && mv \(Shell.quote(out)).tmp \(Shell.quote(out))")
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    private init() throws {
        dir = try TempDir("imagemount-qcow2")
        fixtureFolder.value = dir.path
        atexit {
            if let folder = fixtureFolder.value { try? FileManager.default.removeItem(atPath: folder) }
        }
        let size = Self.virtualSize
        try Data(Self.sourceBytes(count: size)).write(to: URL(fileURLWithPath: dir.file("src.raw")))
        // Backing file for the extended-L2 overlay: a different pattern, full size.
        try Data(Self.sourceBytes(count: size, salt: 0x5C)).write(to: URL(fileURLWithPath: dir.file("back.raw")))
        let writes = Self.commonWrites.map { "-c " + Shell.quote($0) }.joined(separator: " ")
        var script = ["set -e", "cd \(Shell.quote(dir.path))"]
        func convert(_ name: String, _ options: String, from source: String = "src.raw", compress: Bool = false, extraWrites: [String] = [], commonWrites: Bool = true) {
            let c = compress ? "-c " : ""
            script.append("qemu-img convert \(c)-O qcow2 -o \(options) \(source) \(name)")
            let more = extraWrites.map { "-c " + Shell.quote($0) }.joined(separator: " ")
            if commonWrites || !more.isEmpty {
                script.append("qemu-io -f qcow2 \(commonWrites ? writes : "") \(more) \(name) >/dev/null")
            }
        }
        convert("v2-64k.qcow2", "compat=0.10,cluster_size=65536")
        convert("v3-512.qcow2", "cluster_size=512")
        convert("v3-4k.qcow2", "cluster_size=4096")
        convert("v3-64k.qcow2", "cluster_size=65536")
        convert("v3-2m.qcow2", "cluster_size=2097152")
        convert("extl2-64k.qcow2", "extended_l2=on,cluster_size=65536",
                extraWrites: ["write -P 0x61 1050k 2k", "write -z 1100k 3k", "write -P 0x62 4194305 300"])
        // Subclusters (1 KiB here) allocated, zeroed, and left to the backing file in one cluster.
        script.append("qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=32768 -b back.raw -F raw extl2-backed.qcow2 \(size)")
        script.append("qemu-io -f qcow2 -c 'write -P 0x71 2k 2k' -c 'write -z 8k 4k' -c 'write -P 0x72 65537 300' -c 'write -P 0x73 100k 33k' -c 'write -z 5000k 40k' -c 'discard 1M 32k' extl2-backed.qcow2 >/dev/null")
        convert("zlib-64k.qcow2", "cluster_size=65536", from: "v3-64k.qcow2", compress: true, extraWrites: ["write -P 0x77 100k 10k"])
        convert("zlib-4k.qcow2", "cluster_size=4096", compress: true)
        convert("zstd-64k.qcow2", "compression_type=zstd,cluster_size=65536", from: "v3-64k.qcow2", compress: true,
                extraWrites: ["write -P 0x78 300k 70k"])
        // From the raw source (convert stores a cluster uncompressed when the source splits it), and
        // with one small write only: a write to a compressed cluster rewrites it uncompressed.
        convert("zstd-2m.qcow2", "compression_type=zstd,cluster_size=2097152", compress: true,
                extraWrites: ["write -P 0x79 4200000 3000"], commonWrites: false)
        convert("extdata.qcow2", "data_file=extdata.bin,cluster_size=65536")
        convert("extdata-raw.qcow2", "data_file=extdata-raw.bin,data_file_raw=on,cluster_size=4096")
        // A 3-deep chain: short raw base (3 MiB + 512), qcow2 over it by a relative name,
        // qcow2 over that by an absolute name, with writes at every level.
        script.append("head -c \(3 * 1024 * 1024 + 512) src.raw > base.raw")
        script.append("qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 \(size)")
        script.append("qemu-io -f qcow2 -c 'write -P 0x81 1M 70k' -c 'write -z 2900k 200k' -c 'write -P 0x82 3145000 1000' -c 'write -P 0x83 4M 4k' mid.qcow2 >/dev/null")
        script.append("qemu-img create -q -f qcow2 -o cluster_size=4096 -b \(Shell.quote(dir.file("mid.qcow2"))) -F qcow2 top.qcow2 \(size)")
        script.append("qemu-io -f qcow2 -c 'write -P 0x91 0 5000' -c 'write -z 1030k 8k' -c 'write -P 0x92 3146000 9000' top.qcow2 >/dev/null")
        // Two internal snapshots with different contents, then more writes to the active state.
        script.append("qemu-img convert -O qcow2 src.raw snap.qcow2")
        script.append("qemu-img snapshot -c one snap.qcow2")
        script.append("qemu-io -f qcow2 -c 'write -P 0xa1 0 1M' -c 'discard 2560k 256k' -c 'write -z 4M 64k' snap.qcow2 >/dev/null")
        script.append("qemu-img snapshot -c two snap.qcow2")
        script.append("qemu-io -f qcow2 -c 'write -P 0xb1 512k 1M' -c 'write -P 0xb2 5M 1536' snap.qcow2 >/dev/null")
        try Shell.check(script.joined(separator: "\n"))
    }

    /// Compressible but position-dependent bytes (runs of 64 equal bytes that change with the
    /// offset), one incompressible random MiB-half, and one zero half MiB that convert leaves sparse.
    static func sourceBytes(count: Int, salt: UInt8 = 0) -> [UInt8] {
        var rng = SplitMix64(seed: 0x51F0_0D00 ^ UInt64(salt))
        var out = [UInt8](repeating: 0, count: count)
        let mib = 1024 * 1024
        for i in 0..<count {
            switch i {
            case (3 * mib / 2)..<(2 * mib): out[i] = UInt8(truncatingIfNeeded: rng.next())
            case (2 * mib)..<(5 * mib / 2): out[i] = 0
            default: out[i] = UInt8(truncatingIfNeeded: i >> 6) ^ UInt8(truncatingIfNeeded: i >> 14) ^ salt | 1
            }
        }
        return out
    }
}

/// A small seeded generator, so random reads are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
