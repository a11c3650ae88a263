import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import TestSupport

/// ISO images built with the real mastering tools (xorriso, genisoimage) from one source tree,
/// once per test run, under one scratch directory in /tmp.
enum ISO9660Fixtures {
    /// The scratch directory: one fixed place, emptied when a run first uses it (so at most
    /// one run's images stay behind; they are sparse), and the source tree in it.
    static let scratch: (path: String, ready: Bool) = {
        let path = NSTemporaryDirectory() + "imagemount-iso9660-fixtures"
        let ready = (try? Shell.check("rm -rf \(Shell.quote(path)) && mkdir -p \(Shell.quote(path))")) != nil
        return (path, ready)
    }()
    static var source: String { scratch.path + "/src" }

    private static let built = Locked<[String: String]>([:])
    private static let treeMade = Locked(false)

    /// The source tree: files of several sizes, an empty file, relative, absolute, dot and long
    /// symlinks, a 200-byte name (Rock Ridge NM in a continuation area), a non-ASCII name,
    /// device nodes (one with numbers past 255), a FIFO, odd modes (setuid, sticky), owners, a hard
    /// link, a directory tree 11 levels deep (relocated by genisoimage), and fixed mtimes.
    static func makeTree() throws {
        try treeMade.withValue { made in
            guard !made else { return }
            guard scratch.ready else { throw Shell.Failure(command: "mkdir \(scratch.path)", status: 1, stderr: "") }
            let s = Shell.quote(source)
            try Shell.check("""
                set -e; mkdir -p \(s); cd \(s)
                mkdir -p dir/sub empty-dir deep/1/2/3/4/5/6/7/8/9/10
                printf 'hello\\n' > hello.txt
                head -c 100000 /dev/urandom > dir/random.bin
                head -c 5000 /dev/urandom > dir/sub/five-k
                : > empty.txt
                echo deep > deep/1/2/3/4/5/6/7/8/9/10/file.txt
                ln -s hello.txt rel-link
                ln -s /etc/passwd abs-link
                ln -s ../hello.txt dir/up-link
                ln -s . dot-link
                ln -s "$(head -c 200 /dev/zero | tr '\\0' x)/$(head -c 200 /dev/zero | tr '\\0' y)/../tail//end" long-link
                echo long > "$(head -c 200 /dev/zero | tr '\\0' n)"
                echo u > 'ünïcødé name.txt'
                mknod null c 1 3; mknod blk b 8 1; mknod bigdev c 259 70000
                mkfifo fifo
                ln hello.txt dir/hardlink
                chmod 0640 hello.txt; chmod 4755 dir/random.bin; chmod 0700 dir/sub; chmod 1777 empty-dir
                chown 1234:5678 hello.txt; chown -h 42:43 rel-link
                find . -depth -exec touch -h -d '2001-02-03 04:05:06 UTC' {} +
                touch -d '2019-07-08 09:10:11 UTC' dir/random.bin
                touch -h -d '1999-12-31 23:59:58 UTC' abs-link
                touch -d '2024-02-29 12:00:00 UTC' dir
                """)
            made = true
        }
    }

    /// An image made by `command` (with `SRC` and `OUT` set in its environment), cached by name.
    static func image(_ name: String, _ command: String, tree: String? = nil) throws -> String {
        try makeTree()
        return try built.withValue { images in
            if let path = images[name] { return path }
            let out = scratch.path + "/" + name + ".iso"
            try Shell.check("SRC=\(Shell.quote(tree ?? source)) OUT=\(Shell.quote(out)); \(command)")
            images[name] = out
            return out
        }
    }

    static func rockRidgeJoliet() throws -> String {
        try image("rr-joliet", #"xorriso -as mkisofs -quiet -R -J -joliet-long -V 'RR Joliet' -o "$OUT" "$SRC" 2>/dev/null"#)
    }
    /// genisoimage 1.1.11 spins forever on the 400-byte symlink: it is left out (-m).
    static func genisoimageRelocated() throws -> String {
        try image("genisoimage", #"genisoimage -quiet -R -J -joliet-long -V GENISO -m long-link -o "$OUT" "$SRC" 2>/dev/null"#)
    }
    /// (xorriso writes Rock Ridge unless told --norock.)
    static func jolietOnly() throws -> String {
        try image("joliet", #"xorriso -as mkisofs -quiet --norock -J -joliet-long -o "$OUT" "$SRC" 2>/dev/null"#)
    }
    static func plain(level: Int) throws -> String {
        try image("plain-\(level)", #"xorriso -as mkisofs -quiet --norock -iso-level \#(level) -o "$OUT" "$SRC" 2>/dev/null"#)
    }

    /// A small tree with a boot image and an EFI image: El Torito (BIOS no-emulation entry and a
    /// UEFI section) with an isohybrid MBR in the System Area.
    static func hybridBoot() throws -> String {
        try makeTree()
        let tree = scratch.path + "/boot-src"
        try Shell.check("""
            set -e; mkdir -p \(Shell.quote(tree))/isolinux \(Shell.quote(tree))/efi
            cp /usr/lib/ISOLINUX/isolinux.bin \(Shell.quote(tree))/isolinux/
            head -c 65536 /dev/urandom > \(Shell.quote(tree))/efi/efiboot.img
            echo readme > \(Shell.quote(tree))/README
            """)
        return try image("hybrid", #"xorriso -as mkisofs -quiet -R -J -V HYBRID -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table -eltorito-alt-boot -e efi/efiboot.img -no-emul-boot -isohybrid-gpt-basdat -o "$OUT" "$SRC" 2>/dev/null"#, tree: tree)
    }

    /// ISO level 3 with a sparse 4.5 GiB file (several sections), written sparse too.
    static let bigSize: UInt64 = (9 << 29) + 12_345
    static let bigMarkers: [(UInt64, String)] = [(0, "start"), ((4 << 30) - 3, "across-4GiB"), ((9 << 29) + 12_345 - 8, "the-end!")]
    static func level3Big() throws -> String {
        try makeTree()
        let tree = scratch.path + "/big-src"
        var script = "set -e; mkdir -p \(Shell.quote(tree)); f=\(Shell.quote(tree))/big.bin; truncate -s \(bigSize) \"$f\"; echo small > \(Shell.quote(tree))/small.txt\n"
        for (offset, text) in bigMarkers {
            script += "printf '%s' \(Shell.quote(text)) | dd of=\"$f\" bs=1 seek=\(offset) conv=notrunc status=none\n"
        }
        try Shell.check(script)
        return try image("level3", #"xorriso -as mkisofs -quiet -iso-level 3 -R -o - "$SRC" 2>/dev/null | cp --sparse=always /dev/stdin "$OUT""#, tree: tree)
    }

    static func open(_ path: String) throws -> ISO9660Filesystem {
        try ISO9660Filesystem(device: try RawImage(path: path, writable: false), damageLog: { _ in })
    }
}
