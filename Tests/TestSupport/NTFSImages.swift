import Foundation

/// NTFS test images built with the real tools: `mkntfs -F -Q` on a plain file, filled through
/// an ntfs-3g FUSE mount of that same file (the oracle the NTFS tests compare with), then the
/// same volume inside an sfdisk-partitioned disk and converted to qcow2. Built once per run.
public final class NTFSImages: @unchecked Sendable {
    public let dir: TempDir
    /// The whole-disk volume.
    public var image: String { dir.file("ntfs.img") }
    /// An MBR disk whose partition 1 (from sector 2048) holds the same volume.
    public var partitioned: String { dir.file("ntfs-disk.img") }
    public var qcow2: String { dir.file("ntfs.qcow2") }
    public static let label = "NTFSVOL"
    /// Entries in /many.
    public static let manyCount = 3000
    public static let longName = String(repeating: "N", count: 250) + ".txt"

    public init() throws {
        dir = try TempDir("imagemount-ntfs")
        let script = """
            set -eu
            cd \(Shell.quote(dir.path))
            mkdir -p mnt
            truncate -s 96M ntfs.img
            mkntfs -F -Q -q -L \(Self.label) ntfs.img >/dev/null 2>&1
            # In the foreground (no_detach) in the background, so that `wait` sees it finish
            # writing the volume back after the unmount, before the image is copied.
            ntfs-3g -o no_detach,compression,streams_interface=xattr ntfs.img mnt </dev/null >/dev/null 2>&1 &
            ntfs3g=$!
            trap 'fusermount -u mnt 2>/dev/null || true; wait' EXIT
            for i in $(seq 1 100); do mountpoint -q mnt && break; sleep 0.1; done
            cd mnt
            mkdir -p deep/1/2/3/4/5/6/7/8/9 many comp
            echo hello > a.txt
            echo 'at the bottom' > deep/1/2/3/4/5/6/7/8/9/leaf.txt
            echo unicode > 'été ünï ☃.txt'
            echo cjk > '日本語のファイル名.txt'
            echo long > \(Self.longName)
            echo 'Long File Name' > 'Long File Name.txt'
            setfattr -n system.ntfs_dos_name -v 'LONGFI~1.TXT' 'Long File Name.txt'
            head -c 20000000 /dev/urandom > big.bin
            truncate -s 10M sparse.bin && printf 'middle' | dd of=sparse.bin bs=1 seek=5000000 conv=notrunc status=none
            printf 'tail' >> sparse.bin
            setfattr -h -v 0x00000810 -n system.ntfs_attrib_be comp
            yes 'compressible line of text' | head -c 3000000 > comp/text.txt
            echo body > streams.txt
            setfattr -n user.stream -v 'stream value' streams.txt
            setfattr -n user.second -v 'another' streams.txt
            ln a.txt hardlink.txt
            ln -s a.txt rel-link
            ln -s deep/1/2 dir-link
            ln -s /absolute/target abs-link
            # A Windows symbolic link: an IO_REPARSE_TAG_SYMLINK reparse point (MS-FSCC 2.1.2.4),
            # relative (flags 1), substitute and print names both "a.txt".
            touch reparse-link
            setfattr -n system.ntfs_reparse_data -v 0x0c0000a02000000000000a000a000a000100000061002e0074007800740061002e00740078007400 reparse-link
            mkfifo fifo
            for i in $(seq 1 \(Self.manyCount)); do echo "entry $i" > many/file-$i; done
            cd ..
            fusermount -u mnt
            wait $ntfs3g
            trap - EXIT
            dd if=/dev/zero of=ntfs-disk.img bs=1M count=0 seek=100 status=none
            printf 'label: dos\\nstart=2048, type=7\\n' | sfdisk -q --no-reread --no-tell-kernel ntfs-disk.img
            dd if=ntfs.img of=ntfs-disk.img bs=1M seek=1 conv=notrunc,sparse status=none
            qemu-img convert -O qcow2 ntfs.img ntfs.qcow2
            """
        try Shell.check("bash -c \(Shell.quote(script))")
    }

    /// Runs `body` with ntfs-3g's read-only mount of `image` (the oracle), unmounting after.
    public func withOracle<R>(_ image: String? = nil, _ body: (String) throws -> R) throws -> R {
        let mnt = try TempDir("imagemount-ntfs-oracle")
        try Self.mountNtfs3g(image ?? self.image, at: mnt.path, options: "ro,streams_interface=xattr")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(mnt.path)) || fusermount -u -z \(Shell.quote(mnt.path))") }
        return try body(mnt.path)
    }

    /// Mounts `image` with ntfs-3g. The daemon it leaves must hold none of our pipes (Shell.run
    /// reads to EOF), so its stdio is /dev/null and every other descriptor the shell inherited
    /// is closed before it starts.
    public static func mountNtfs3g(_ image: String, at mountPoint: String, options: String) throws {
        let closeInherited = "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done 2>/dev/null"
        try Shell.check("bash -c \(Shell.quote("\(closeInherited); exec ntfs-3g -o \(options) \(Shell.quote(image)) \(Shell.quote(mountPoint)) </dev/null >/dev/null 2>&1"))")
    }

    /// A fresh NTFS volume of `megabytes` MiB at `path` (`mkntfs -F -Q`), filled by `script`
    /// (bash, run inside an ntfs-3g read-write mount of it) when one is given: the fixture of
    /// the write tests, each of which writes its own copy.
    @discardableResult
    public static func volume(at path: String, megabytes: Int = 64, label: String = "NTFSW", script: String? = nil) throws -> String {
        try Shell.check("truncate -s \(megabytes)M \(Shell.quote(path)) && mkntfs -F -Q -q -L \(label) \(Shell.quote(path)) >/dev/null 2>&1")
        if let script { try withNtfs3g(path, script) }
        return path
    }

    /// Runs `script` (bash) in the root of an ntfs-3g read-write mount of `image`; returns once
    /// ntfs-3g has unmounted and written everything back (no_detach, waited for).
    public static func withNtfs3g(_ image: String, _ script: String) throws {
        let mnt = try TempDir("imagemount-ntfs-fill")
        let wrapper = """
            set -eu
            ntfs-3g -o no_detach,streams_interface=xattr \(Shell.quote(image)) \(Shell.quote(mnt.path)) </dev/null >/dev/null 2>&1 &
            ntfs3g=$!
            trap 'cd /; fusermount -u \(Shell.quote(mnt.path)) 2>/dev/null || true; wait' EXIT
            for i in $(seq 1 100); do mountpoint -q \(Shell.quote(mnt.path)) && break; sleep 0.1; done
            mountpoint -q \(Shell.quote(mnt.path))
            cd \(Shell.quote(mnt.path))
            bash -c \(Shell.quote("set -e\n" + script))
            cd /
            fusermount -u \(Shell.quote(mnt.path))
            wait $ntfs3g
            trap - EXIT
            """
        try Shell.check("bash -c \(Shell.quote(wrapper))")
    }

    /// What a tree holds, one line per entry, sorted: type, size, path, symlink target, the
    /// sha256 of a regular file's bytes and its user.* xattrs (getfattr's hex dump). Two
    /// trees with equal manifests hold the same names, sizes, bytes and streams.
    public static func manifest(_ root: String) throws -> String {
        let script = """
            cd \(Shell.quote(root))
            find . -mindepth 1 -printf '%y\\t%p\\t%l\\n' | LC_ALL=C sort | while IFS="$(printf '\\t')" read -r type path target; do
                size=-; sum=-; xattrs=-
                if [ "$type" = f ]; then
                    size=$(stat -c %s "$path"); sum=$(sha256sum < "$path" | cut -c1-64)
                    xattrs=$(getfattr --absolute-names -m '^user\\.' -e hex -d "$path" 2>/dev/null | grep -v '^#' | grep . | LC_ALL=C sort | tr '\\n' ' ')
                fi
                printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$type" "$size" "$path" "$target" "$sum" "$xattrs"
            done
            """
        return try Shell.check("bash -c \(Shell.quote(script))")
    }

    /// `find` of a tree: per entry type, mode, size, links, inode, mtime, atime, ctime, 512-byte
    /// blocks, path and symlink target, sorted (one line each; the fixture's names hold no tabs
    /// or newlines).
    public static func listing(_ root: String) throws -> String {
        try Shell.check("cd \(Shell.quote(root)) && find . -mindepth 1 -printf '%y\\t%m\\t%U:%G\\t%s\\t%n\\t%i\\t%T@\\t%A@\\t%C@\\t%b\\t%p\\t%l\\n' | LC_ALL=C sort")
    }
}
