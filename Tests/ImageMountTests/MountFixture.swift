import Foundation
import TestSupport

/// Images for the mount tests, built once per run with `mke2fs -d` from source trees that
/// stay on disk as the oracle: a root tree (hard links, symlinks, devices, a fifo, a sparse
/// file, xattrs, nanosecond times, odd owners and modes, a 20 000-entry directory) and a
/// small /boot tree.
final class MountFixture: @unchecked Sendable {
    let directory: TempDir
    var rootSource: String { directory.file("root") }
    var bootSource: String { directory.file("boot") }
    /// ext4, 4 KiB blocks, 256-byte inodes (so times have nanoseconds), whole-disk.
    var rootImage: String { directory.file("root.img") }
    /// ext2, 1 KiB blocks, whole-disk.
    var bootImage: String { directory.file("boot.img") }
    /// GPT disk: partition 1 = boot.img, partition 2 = root.img.
    var partitionedImage: String { directory.file("disk.img") }

    static let bigDirectoryCount = 20_000

    /// The image at `path` in `format`: itself for "raw"; for "qcow2" a compressed qcow2
    /// conversion made once with qemu-img (so mounts are tested on both, as on raw).
    func image(_ path: String, format: String) throws -> String {
        guard format == "qcow2" else { return path }
        return try Self.converted.withValue { cache in
            if let done = cache[path] { return done }
            let target = path + ".qcow2"
            try Shell.check("qemu-img convert -c -O qcow2 -o cluster_size=65536 \(Shell.quote(path)) \(Shell.quote(target))")
            cache[path] = target
            return target
        }
    }

    private static let converted = Locked<[String: String]>([:])

    static let shared: Result<MountFixture, any Error> = Result { try MountFixture() }
    static func get() throws -> MountFixture { try shared.get() }

    /// The fixture lives for the whole run (a static is never released), so its directory is
    /// removed at process exit instead.
    nonisolated(unsafe) private static var cleanupPath: String?

    private init() throws {
        directory = try TempDir("imagemount-fixture")
        Self.cleanupPath = directory.path
        atexit {
            if let path = MountFixture.cleanupPath { _ = try? FileManager.default.removeItem(atPath: path) }
        }
        let script = """
            set -eu
            R=\(Shell.quote(rootSource)); B=\(Shell.quote(bootSource))
            mkdir -p "$R/dir/sub/deeper" "$R/empty" "$R/special" "$R/boot" "$R/big" "$B/grub"
            echo hello > "$R/a.txt"
            ln "$R/a.txt" "$R/dir/hard"
            ln -s ../a.txt "$R/dir/link"
            ln -s "$(printf '%0300d' 0 | tr 0 x)/target" "$R/dir/longlink"
            head -c 3000000 /dev/urandom > "$R/random.bin"
            head -c 70000 /dev/urandom > "$R/dir/sub/deeper/file"
            printf 'name with space' > "$R/dir/sp ace"
            truncate -s 50M "$R/sparse"
            printf data | dd of="$R/sparse" bs=1 seek=20000000 conv=notrunc status=none
            echo suid > "$R/dir/setuid"; chmod 4755 "$R/dir/setuid"
            echo owned > "$R/dir/owned"; chown 1234:5678 "$R/dir/owned"; chmod 640 "$R/dir/owned"
            chmod 1777 "$R/empty"
            mknod "$R/special/cdev" c 1 3
            mknod "$R/special/bdev" b 8 17
            mknod "$R/special/wide" c 300 70000
            mkfifo "$R/special/fifo"
            (cd "$R/big" && seq -f 'f%05g' 0 \(Self.bigDirectoryCount - 1) | xargs touch)
            setfattr -n user.test -v value1 "$R/a.txt"
            setfattr -n user.binary -v 0x00ff10 "$R/dir/owned"
            setfattr -n user.empty "$R/dir/sub"
            touch -h -d '2021-03-04 05:06:07.123456789' "$R/dir/sp ace" "$R/dir/link"
            touch -d '1999-12-31 23:59:59.999999999' "$R/dir/sub"
            echo kernel > "$B/vmlinuz"; echo menu > "$B/grub/grub.cfg"
            mke2fs -q -F -t ext4 -b 4096 -I 256 -d "$R" \(Shell.quote(rootImage)) 256M
            # mke2fs 1.47.0 -d keeps whole seconds only: put nanoseconds in with debugfs
            # (i_mtime_extra = nanoseconds << 2, ext4 disk layout "Inode Timestamps").
            debugfs -w -R 'sif "/dir/sp ace" mtime_extra 493827156' \(Shell.quote(rootImage)) 2>/dev/null
            debugfs -w -R 'sif /dir/sub mtime_extra 3999999996' \(Shell.quote(rootImage)) 2>/dev/null
            mke2fs -q -F -t ext2 -b 1024 -d "$B" \(Shell.quote(bootImage)) 16M
            truncate -s 300M \(Shell.quote(partitionedImage))
            sgdisk -n 1:2048:+16M -t 1:8300 -n 2:0:+256M -t 2:8300 \(Shell.quote(partitionedImage)) >/dev/null
            dd if=\(Shell.quote(bootImage)) of=\(Shell.quote(partitionedImage)) bs=1M seek=1 conv=notrunc status=none
            start2=$(sgdisk -i 2 \(Shell.quote(partitionedImage)) | sed -n 's/^First sector: \\([0-9]*\\).*/\\1/p')
            dd if=\(Shell.quote(rootImage)) of=\(Shell.quote(partitionedImage)) bs=512 seek=$start2 conv=notrunc,sparse status=none
            echo $start2 > \(Shell.quote(directory.file("start2")))
            """
        try Shell.check("bash -c \(Shell.quote(script))")
    }

    /// Byte offset of partition 2 (the root filesystem) in the partitioned image.
    var rootPartitionOffset: UInt64 {
        let text = (try? String(contentsOfFile: directory.file("start2"), encoding: .utf8)) ?? "0"
        return (UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) * 512
    }
}
