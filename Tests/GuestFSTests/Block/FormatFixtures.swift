import Foundation
import TestSupport
@testable import GuestFSBlock

/// The folder of the other formats' fixtures, removed when the test process exits.
private let formatFixtureFolder = Locked<String?>(nil)

/// Images of the read-only formats (vpc, vdi, vhdx, qcow, qed, parallels), built once per test run with qemu-img and
/// qemu-io from one source disk, with the raw image `qemu-img convert -O raw` makes of each.
final class FormatFixtures: Sendable {
    let dir: TempDir
    private let oracleLock = NSLock()
    /// Size of the source disk: no multiple of a CHS cylinder, a block or a MiB.
    static let sourceSize = 5 * 1024 * 1024 + 1536

    struct Image: Sendable {
        let name: String
        let format: ImageFormat
        /// Shell lines (run in the fixture folder) that make it.
        let commands: [String]
    }

    /// Guest writes that straddle 512 B sectors, 1 MiB (vdi) and 2 MiB (vpc) blocks, made in an
    /// order that allocates later blocks first.
    static func writes(_ format: String, _ image: String) -> String {
        let w = ["write -P 0x61 5000000 5000", "write -P 0x62 2097000 1000", "write -P 0x63 1 3", "write -P 0x64 4194303 2",
                 "write -z 300k 8k", "write -P 0x65 1048570 20"]
        return "qemu-io -f \(format) " + w.map { "-c " + Shell.quote($0) }.joined(separator: " ") + " \(image) >/dev/null"
    }

    /// `qemu-img convert -c -O qcow`: QEMU 7.2 exits 1 without a message after writing every
    /// cluster, so the status is ignored and `qemu-img compare` vouches for the image instead.
    static func compressedQcow(_ source: String, _ image: String) -> String {
        let (s, i) = (Shell.quote(source), Shell.quote(image))
        return "{ qemu-img convert -c -O qcow \(s) \(i) || true; } && qemu-img compare -q -f raw -F qcow \(s) \(i)"
    }

    static let images: [Image] = [
        Image(name: "vpc-converted.vhd", format: .vpc, commands: ["qemu-img convert -O vpc src.raw vpc-converted.vhd",
                                                                   writes("vpc", "vpc-converted.vhd")]),
        Image(name: "vpc-created.vhd", format: .vpc, commands: ["qemu-img create -q -f vpc vpc-created.vhd 7M",
                                                                 writes("vpc", "vpc-created.vhd")]),
        Image(name: "vpc-empty.vhd", format: .vpc, commands: ["qemu-img create -q -f vpc vpc-empty.vhd 300M"]),
        Image(name: "vpc-force.vhd", format: .vpc, commands: ["qemu-img convert -O vpc -o force_size=on src.raw vpc-force.vhd",
                                                               writes("vpc", "vpc-force.vhd")]),
        Image(name: "vpc-fixed.vhd", format: .vpc, commands: ["qemu-img convert -O vpc -o subformat=fixed src.raw vpc-fixed.vhd"]),
        Image(name: "vpc-fixed-force.vhd", format: .vpc,
              commands: ["qemu-img convert -O vpc -o subformat=fixed,force_size=on src.raw vpc-fixed-force.vhd",
                         writes("vpc", "vpc-fixed-force.vhd")]),
        Image(name: "vdi-converted.vdi", format: .vdi, commands: ["qemu-img convert -O vdi src.raw vdi-converted.vdi",
                                                                   writes("vdi", "vdi-converted.vdi")]),
        Image(name: "vdi-created.vdi", format: .vdi, commands: ["qemu-img create -q -f vdi vdi-created.vdi 7M",
                                                                 writes("vdi", "vdi-created.vdi")]),
        Image(name: "vdi-static.vdi", format: .vdi, commands: ["qemu-img convert -O vdi -o static=on src.raw vdi-static.vdi",
                                                                writes("vdi", "vdi-static.vdi")]),
        Image(name: "vdi-odd.vdi", format: .vdi, commands: ["qemu-img create -q -f vdi vdi-odd.vdi 3000001",
                                                             "qemu-io -f vdi -c 'write -P 0x44 1048000 2000' vdi-odd.vdi >/dev/null"]),
        Image(name: "vdi-empty.vdi", format: .vdi, commands: ["qemu-img create -q -f vdi vdi-empty.vdi 300M"]),
        Image(name: "vhdx-converted.vhdx", format: .vhdx, commands: ["qemu-img convert -O vhdx src.raw vhdx-converted.vhdx",
                                                                      writes("vhdx", "vhdx-converted.vhdx")]),
        Image(name: "vhdx-1m.vhdx", format: .vhdx, commands: ["qemu-img convert -O vhdx -o block_size=1M,log_size=1M src.raw vhdx-1m.vhdx",
                                                               writes("vhdx", "vhdx-1m.vhdx")]),
        Image(name: "vhdx-nozero.vhdx", format: .vhdx,
              commands: ["qemu-img create -q -f vhdx -o block_size=1M,block_state_zero=off vhdx-nozero.vhdx 7M",
                         writes("vhdx", "vhdx-nozero.vhdx")]),
        Image(name: "vhdx-fixed.vhdx", format: .vhdx, commands: ["qemu-img convert -O vhdx -o subformat=fixed src.raw vhdx-fixed.vhdx",
                                                                  writes("vhdx", "vhdx-fixed.vhdx")]),
        Image(name: "vhdx-created.vhdx", format: .vhdx, commands: ["qemu-img create -q -f vhdx -o block_size=2M vhdx-created.vhdx 7M",
                                                                    writes("vhdx", "vhdx-created.vhdx")]),
        Image(name: "vhdx-empty.vhdx", format: .vhdx, commands: ["qemu-img create -q -f vhdx vhdx-empty.vhdx 300M"]),
        // qcow v1: the default 4 KiB clusters, compressed clusters (convert -c), the 512 B clusters
        // qemu-img gives an image with a backing file, over a qcow base.
        Image(name: "qcow-converted.qcow", format: .qcow, commands: ["qemu-img convert -O qcow src.raw qcow-converted.qcow",
                                                                      writes("qcow", "qcow-converted.qcow")]),
        Image(name: "qcow-compressed.qcow", format: .qcow, commands: [compressedQcow("src.raw", "qcow-compressed.qcow")]),
        Image(name: "qcow-created.qcow", format: .qcow, commands: ["qemu-img create -q -f qcow qcow-created.qcow 7M",
                                                                    writes("qcow", "qcow-created.qcow")]),
        Image(name: "qcow-overlay.qcow", format: .qcow,
              commands: ["qemu-img create -q -f qcow -b qcow-compressed.qcow -F qcow qcow-overlay.qcow", writes("qcow", "qcow-overlay.qcow")]),
        Image(name: "qcow-empty.qcow", format: .qcow, commands: ["qemu-img create -q -f qcow qcow-empty.qcow 300M"]),
        // QED: default 64 KiB clusters and 4-cluster tables, the smallest (4 KiB, 2) and largest
        // tables, a qed overlay (backing probed) and one over a raw base (QED_F_BACKING_FORMAT_NO_PROBE).
        Image(name: "qed-converted.qed", format: .qed, commands: ["qemu-img convert -O qed src.raw qed-converted.qed",
                                                                   writes("qed", "qed-converted.qed")]),
        Image(name: "qed-4k.qed", format: .qed, commands: ["qemu-img convert -O qed -o cluster_size=4096,table_size=2 src.raw qed-4k.qed",
                                                            writes("qed", "qed-4k.qed")]),
        Image(name: "qed-1m16.qed", format: .qed, commands: ["qemu-img create -q -f qed -o cluster_size=1M,table_size=16 qed-1m16.qed 7M",
                                                              writes("qed", "qed-1m16.qed")]),
        Image(name: "qed-overlay.qed", format: .qed,
              commands: ["qemu-img create -q -f qed -b qed-4k.qed -F qed qed-overlay.qed", writes("qed", "qed-overlay.qed")]),
        Image(name: "qed-rawbase.qed", format: .qed,
              commands: ["qemu-img create -q -f qed -b src.raw -F raw qed-rawbase.qed", writes("qed", "qed-rawbase.qed")]),
        Image(name: "qed-empty.qed", format: .qed, commands: ["qemu-img create -q -f qed qed-empty.qed 300M"]),
        // Parallels: the default 1 MiB clusters and 64 KiB ones.
        Image(name: "parallels-converted.hdd", format: .parallels, commands: ["qemu-img convert -O parallels src.raw parallels-converted.hdd",
                                                                               writes("parallels", "parallels-converted.hdd")]),
        Image(name: "parallels-64k.hdd", format: .parallels,
              commands: ["qemu-img create -q -f parallels -o cluster_size=64k parallels-64k.hdd 7M", writes("parallels", "parallels-64k.hdd")]),
        Image(name: "parallels-empty.hdd", format: .parallels, commands: ["qemu-img create -q -f parallels parallels-empty.hdd 300M"]),
    ]

    static func image(_ name: String) -> Image? { images.first { $0.name == name } }

    private static let built: Result<FormatFixtures, any Error> = Result { try FormatFixtures() }

    /// The fixtures, built on first use.
    static func get() throws -> FormatFixtures { try built.get() }

    func path(_ name: String) -> String { dir.file(name) }

    /// The oracle bytes of `name`: qemu-img convert -O raw, the format given.
    func oracle(_ name: String) throws -> [UInt8] {
        let format = Self.image(name)?.format.rawValue ?? "raw"
        let out = dir.file("\(name).raw")
        oracleLock.lock()
        defer { oracleLock.unlock() }
        if !FileManager.default.fileExists(atPath: out) {
            try Shell.check("cd \(Shell.quote(dir.path)) && qemu-img convert -f \(format) -O raw \(Shell.quote(name)) \(Shell.quote(out)).tmp && mv \(Shell.quote(out)).tmp \(Shell.quote(out))")
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    private init() throws {
        dir = try TempDir("imagemount-formats")
        formatFixtureFolder.value = dir.path
        atexit {
            if let folder = formatFixtureFolder.value { try? FileManager.default.removeItem(atPath: folder) }
        }
        try Data(Qcow2Fixtures.sourceBytes(count: Self.sourceSize, salt: 0x3D)).write(to: URL(fileURLWithPath: dir.file("src.raw")))
        let script = ["set -e", "cd \(Shell.quote(dir.path))"] + Self.images.flatMap(\.commands)
        try Shell.check(script.joined(separator: "\n"))
    }
}
