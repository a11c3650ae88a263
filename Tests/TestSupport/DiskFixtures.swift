import Foundation

/// Partitioned images holding filesystems built from the sample tree, built once per run.
public enum DiskFixtures {
    /// Where each filesystem went: partition number → (start byte, size bytes).
    public struct Layout: Sendable {
        public let path: String
        public let partitions: [Int: (start: UInt64, size: UInt64)]
    }

    /// MBR: /dev/sda1 ext4 (64 MiB), extended /dev/sda2, logical /dev/sda5 ext2 (16 MiB, label BOOT)
    /// and /dev/sda6 ext3 (16 MiB). The tree goes into sda1 and sda6; sda5 holds a small /etc.
    public static func mbr() throws -> Layout {
        try cached("mbr") { path in
            try Shell.check("truncate -s 120M \(Shell.quote(path)) && printf '%s\\n' 'label: dos' 'label-id: 0x1badcafe' " +
                            "'start=2048, size=131072, type=83' 'start=133120, type=5' " +
                            "'start=135168, size=32768, type=83' 'start=169984, size=32768, type=83' | sfdisk -q \(Shell.quote(path))")
            let parts: [Int: (UInt64, UInt64)] = [1: (2048 * 512, 131_072 * 512), 5: (135_168 * 512, 32_768 * 512),
                                                  6: (169_984 * 512, 32_768 * 512)]
            try makeFS(path, parts[1]!, type: "ext4", source: Fixtures.tree.root)
            try makeFS(path, parts[5]!, type: "ext2", source: try smallTree("boot-on-sda5"), extra: "-L BOOT")
            try makeFS(path, parts[6]!, type: "ext3", source: Fixtures.tree.root)
            return parts
        }
    }

    /// GPT: partition 1 "root" ext4 (64 MiB), partition 2 "boot" ext2 (16 MiB).
    public static func gpt() throws -> Layout {
        try cached("gpt") { path in
            try Shell.check("truncate -s 100M \(Shell.quote(path)) && sgdisk -o -n 1:2048:+64M -c 1:root -t 1:8300 " +
                            "-n 2:0:+16M -c 2:boot -t 2:8300 \(Shell.quote(path)) > /dev/null")
            let json = try Shell.check("sfdisk --json \(Shell.quote(path))")
            var parts: [Int: (UInt64, UInt64)] = [:]
            let table = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            let list = (table?["partitiontable"] as? [String: Any])?["partitions"] as? [[String: Any]] ?? []
            for (i, p) in list.enumerated() {
                parts[i + 1] = (UInt64(p["start"] as? Int ?? 0) * 512, UInt64(p["size"] as? Int ?? 0) * 512)
            }
            try makeFS(path, parts[1]!, type: "ext4", source: Fixtures.tree.root)
            try makeFS(path, parts[2]!, type: "ext2", source: try smallTree("boot-on-gpt2"))
            return parts
        }
    }

    /// A tiny tree whose /etc/hostname names where it lives.
    public static func smallTree(_ name: String) throws -> String {
        let dir = Fixtures.scratch.file("tree-" + name)
        try Shell.check("mkdir -p \(Shell.quote(dir))/etc && printf '%s\\n' \(Shell.quote(name)) > \(Shell.quote(dir))/etc/hostname")
        return dir
    }

    /// mke2fs into a byte range of an image file (mke2fs -E offset=).
    public static func makeFS(_ image: String, _ range: (start: UInt64, size: UInt64), type: String, source: String, extra: String = "") throws {
        try Shell.check("mke2fs -F -q -t \(type) \(extra) -E offset=\(range.start) -d \(Shell.quote(source)) " +
                        "\(Shell.quote(image)) \(range.size / 1024)k")
    }

    private static let built = Locked<[String: Layout]>([:])

    private static func cached(_ name: String, _ build: (String) throws -> [Int: (UInt64, UInt64)]) throws -> Layout {
        try built.withValue { cache in
            if let layout = cache[name] { return layout }
            let path = Fixtures.scratch.file(name + ".img")
            let parts = try build(path)
            let layout = Layout(path: path, partitions: parts.mapValues { (start: $0.0, size: $0.1) })
            cache[name] = layout
            return layout
        }
    }
}
