import Foundation
import TestSupport

/// Disk images shared by the listing-command tests, built once per test run from the real
/// tools (mke2fs -d, sfdisk, sgdisk, mkswap), small and sparse.
///
/// Each is built on first use; the directory they live in is removed when the test process exits.
enum CLITestImages {
    /// Where every fixture of this run lives.
    static let directory: String = {
        let path = NSTemporaryDirectory() + "imagemount-cli-\(getpid())"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: CLITestImages.directory) }
        return path
    }()

    static func path(_ name: String) -> String { directory + "/" + name }

    /// Why a fixture could not be built (kept as text so the cached result is Sendable).
    struct FixtureError: Error, Sendable, CustomStringConvertible {
        let description: String
    }

    static func build(_ body: () throws -> String) -> Result<String, FixtureError> {
        do { return .success(try body()) } catch { return .failure(FixtureError(description: "\(error)")) }
    }

    /// The source tree of `wholeDisk`: a bit of everything virt-ls shows.
    static let sourceTree: Result<String, FixtureError> = build {
        let src = path("src")
        try Shell.check("""
            set -e
            mkdir -p \(src)/etc/sub \(src)/sizes '\(src)/dir with space' \(src)/a \(src)/a.b \(src)/empty
            printf 'hello\\n' > \(src)/etc/hosts
            printf 'x%.0s' $(seq 1 5000) > \(src)/etc/services
            printf 'deep\\n' > \(src)/etc/sub/file
            ln -s /etc/hosts \(src)/link-abs
            ln -s etc/sub \(src)/link-rel
            ln -s /nowhere \(src)/dangling
            mkfifo \(src)/fifo
            mknod \(src)/null c 1 3
            mknod \(src)/sda1 b 8 1
            touch \(src)/a/x \(src)/a.b/y '\(src)/dir with space/q"uote,comma'
            chmod 4755 \(src)/a/x; chmod 1777 \(src)/a; chmod 2750 \(src)/a.b; chmod 0600 \(src)/etc/hosts
            chown 1234:5678 \(src)/etc/sub/file
            for n in 0 1023 1024 1536 1587 10239 10752 11776 1048575 1048576 1572864; do truncate -s $n \(src)/sizes/s$n; done
            touch -d '2001-02-03 04:05:06' \(src)/etc/hosts
            touch -h -d '2010-06-07 08:09:10' \(src)/link-abs
            """)
        return src
    }

    /// ext4 on the whole disk (no partition table), label "rootfs", built from `sourceTree`.
    static let wholeDisk: Result<String, FixtureError> = build {
        let src = try sourceTree.get()
        let image = path("whole.img")
        try Shell.check("truncate -s 64M \(image) && mke2fs -q -F -t ext4 -L rootfs -d \(src) \(image)")
        return image
    }

    /// A second whole-disk filesystem (ext2, 8 MiB), for two-drive runs.
    static let secondDisk: Result<String, FixtureError> = build {
        let image = path("second.img")
        try Shell.check("truncate -s 8M \(image) && mke2fs -q -F -t ext2 -L data \(image)")
        return image
    }

    /// MBR: sda1 ext4 "boot" (16 MiB), sda2 extended, sda5 swap "swappy" (8 MiB), sda6 ext2
    /// "home" (the rest). The filesystems are written at their partitions' offsets.
    static let mbrDisk: Result<String, FixtureError> = build {
        let src = try sourceTree.get()
        let image = path("mbr.img")
        try Shell.check("""
            set -e
            truncate -s 64M \(image)
            printf 'label: dos\\nlabel-id: 0x1234abcd\\nstart=2048, size=32768, type=83\\nstart=34816, type=5\\nstart=36864, size=16384, type=82\\nstart=55296, type=83\\n' | sfdisk -q \(image)
            """)
        let parts = try partitionOffsets(image)
        func at(_ n: Int) throws -> (start: UInt64, size: UInt64) {
            guard let p = parts.first(where: { $0.number == n }) else { throw FixtureError(description: "sfdisk made no partition \(n)") }
            return (p.start, p.size)
        }
        let (one, five, six) = (try at(1), try at(5), try at(6))
        try Shell.check("mke2fs -q -F -t ext4 -L boot -d \(src)/etc -E offset=\(one.start) \(image) \(one.size / 1024)k")
        try Shell.check("mke2fs -q -F -t ext2 -L home -E offset=\(six.start) \(image) \(six.size / 1024)k")
        let swap = path("swap.part")
        try Shell.check("""
            truncate -s \(five.size) \(swap) && mkswap -q -L swappy \(swap) >/dev/null && \
            dd if=\(swap) of=\(image) bs=1M seek=\(five.start) oflag=seek_bytes conv=notrunc,sparse status=none && rm \(swap)
            """)
        return image
    }

    /// GPT: sda1 ext4 "gptroot" named "root", sda2 a Microsoft Reserved partition (never a
    /// filesystem for libguestfs), sda3 an empty Linux partition.
    static let gptDisk: Result<String, FixtureError> = build {
        let image = path("gpt.img")
        try Shell.check("""
            set -e
            truncate -s 48M \(image)
            sgdisk -o -n 1:2048:+20M -t 1:8300 -c 1:root -n 2:0:+4M -t 2:0C01 -n 3:0:+8M -t 3:8300 \(image) >/dev/null
            """)
        guard let one = try partitionOffsets(image).first(where: { $0.number == 1 }) else {
            throw FixtureError(description: "sgdisk made no partition 1")
        }
        // Made apart and copied in: mke2fs -E offset= wipes the primary GPT header.
        let part = path("gptroot.part")
        try Shell.check("""
            truncate -s \(one.size) \(part) && mke2fs -q -F -t ext4 -L gptroot \(part) && \
            dd if=\(part) of=\(image) bs=1M seek=\(one.start) oflag=seek_bytes conv=notrunc,sparse status=none && rm \(part)
            """)
        return image
    }

    /// Partitions as `sfdisk --json` sees them: number, byte offset, byte size, type.
    static func partitionOffsets(_ image: String) throws -> [(number: Int, start: UInt64, size: UInt64, type: String)] {
        let json = try Shell.check("sfdisk --json \(Shell.quote(image))")
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let table = object?["partitiontable"] as? [String: Any]
        let sectorSize = (table?["sectorsize"] as? Int).map(UInt64.init) ?? 512
        return (table?["partitions"] as? [[String: Any]] ?? []).map { p in
            let node = p["node"] as? String ?? ""
            let number = Int(node.reversed().prefix { $0.isNumber }.reversed().map(String.init).joined()) ?? 0
            return (number, UInt64(p["start"] as? Int ?? 0) * sectorSize, UInt64(p["size"] as? Int ?? 0) * sectorSize,
                    p["type"] as? String ?? "")
        }
    }

    /// `blkid -p -o export` of a byte range of an image (the whole image when `offset` is nil).
    static func blkid(_ image: String, offset: UInt64? = nil, size: UInt64? = nil) throws -> [String: String] {
        var options = ""
        if let offset { options += " -O \(offset)" }
        if let size { options += " -S \(size)" }
        let out = try Shell.run("blkid -p -o export\(options) \(Shell.quote(image))").text
        var fields: [String: String] = [:]
        for line in out.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return fields
    }

    /// Mounts a byte range of an image read-only through a loop device (`losetup -o --sizelimit`),
    /// runs `body` with the mount point, and always unmounts and detaches.
    static func withKernelMount<T>(_ image: String, offset: UInt64 = 0, size: UInt64? = nil,
                                   _ body: (String) throws -> T) throws -> T {
        let dir = try TempDir("imagemount-cli-mnt")
        let limit = size.map { " --sizelimit \($0)" } ?? ""
        let loop = try Shell.check("losetup -f --show -r -o \(offset)\(limit) \(Shell.quote(image))")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Shell.run("losetup -d \(loop)") }
        try Shell.check("mount -o ro \(loop) \(Shell.quote(dir.path))")
        defer { _ = try? Shell.run("umount \(Shell.quote(dir.path)) || umount -l \(Shell.quote(dir.path))") }
        return try body(dir.path)
    }

    /// Lines of text output, without the empty string after the last newline.
    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0).map(String.init)
    }

    /// Columns of a whitespace-aligned line.
    static func columns(_ line: String) -> [String] {
        line.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    /// The numbers `stat -f -c FORMAT` prints for a mount point; throws unless there are `count`.
    static func statfs(_ mountPoint: String, _ format: String, count: Int) throws -> [UInt64] {
        let out = try Shell.check("stat -f -c \(Shell.quote(format)) \(Shell.quote(mountPoint))")
        let numbers = columns(out).compactMap { UInt64($0) }
        guard numbers.count == count else { throw FixtureError(description: "stat -f -c '\(format)': \(out)") }
        return numbers
    }
}
