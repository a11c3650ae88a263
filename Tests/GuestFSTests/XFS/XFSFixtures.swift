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
#if canImport(Glibc)
import Glibc
#endif

/// XFS images made with mkfs.xfs, filled through a kernel loop mount (this kernel mounts v5),
/// and the kernel's own view of each (a read-only remount: lstat of every path, file bytes,
/// SEEK_DATA/SEEK_HOLE, symlink targets, statfs), built once per run under /dev/shm.
enum XFSFixtures {
    static let scratch: (path: String, ready: Bool) = {
        let path = "/dev/shm/imagemount-xfs-fixtures"
        let ready = (try? Shell.check("for m in \(Shell.quote(path))/mnt-*; do umount \"$m\" 2>/dev/null; done; rm -rf \(Shell.quote(path)) && mkdir -p \(Shell.quote(path))")) != nil
        return (path, ready)
    }()

    /// The mkfs.xfs option sets the tests run: v5 defaults; 1 KiB blocks; 2 KiB inodes;
    /// the RHEL 7 feature set (no bigtime, sparse inodes, finobt, reflink, rmapbt); rmapbt,
    /// reflink and nrext64 on.
    static let configurations: [String: String] = [
        "v5-default": "",
        "v5-1k": "-b size=1024",
        "v5-inode2048": "-i size=2048",
        "rhel7-like": "-m crc=1,finobt=0,rmapbt=0,reflink=0,bigtime=0,inobtcount=0 -i sparse=0",
        "v5-rmap-nrext64": "-m rmapbt=1,reflink=1 -i nrext64=1",
    ]

    /// The tree written onto each image: files small, empty and big, a sparse file, a file of
    /// 3000 extents (a bmbt of several leaves), preallocated (unwritten) extents, symlinks short
    /// (inline) and long (remote blocks), devices, a FIFO, a hard link, owners, odd modes, and
    /// timestamps with nanoseconds before 1970 and after 2038; attributes
    /// shortform, leaf (80 names) and remote (a 6000-byte value), in the user, trusted and security
    /// namespaces, and access and default ACLs.
    static let populate = #"""
        set -e
        mkdir -p dir/sub empty
        printf 'hello\n' > hello.txt
        head -c 100000 /dev/urandom > dir/random.bin
        head -c 9000000 /dev/urandom > big.bin
        : > empty.txt
        xfs_io -f -c 'pwrite -S 0x61 0 5000' -c 'pwrite -S 0x62 1048576 4096' -c 'pwrite -S 0x63 5242887 100' \
            -c 'truncate 10485760' sparse.bin >/dev/null
        i=0; while [ $i -lt 3000 ]; do echo "pwrite -S $((i % 251)) $((i * 8192)) 4096"; i=$((i + 1)); done | xfs_io -f frag.bin >/dev/null
        xfs_io -f -c 'falloc 0 1048576' -c 'pwrite -S 0x7a 65536 4096' prealloc.bin >/dev/null
        xfs_io -f -c 'falloc -k 0 262144' -c 'pwrite -S 0x7b 0 1000' keep-size.bin >/dev/null
        ln -s hello.txt rel-link
        ln -s /etc/passwd abs-link
        ln -s "$(head -c 300 /dev/zero | tr '\0' a)" link-300
        ln -s "$(head -c 700 /dev/zero | tr '\0' b)/end" link-704
        ln -s "$(head -c 1023 /dev/zero | tr '\0' c)" link-1023
        mknod null c 1 3; mknod blk b 8 1; mknod bigdev c 259 70000
        mkfifo fifo
        ln hello.txt dir/hardlink
        chmod 0640 hello.txt; chmod 4755 dir/random.bin; chmod 0700 dir/sub; chmod 1777 empty
        chown 1234:5678 hello.txt; chown -h 42:43 rel-link; chown 4000000000:7 big.bin
        echo old > old.txt; echo future > future.txt
        touch -d '2001-02-03 04:05:06.123456789 UTC' hello.txt
        touch -d '1950-06-07 08:09:10.5 UTC' old.txt
        touch -d '2100-01-01 00:00:00.000000001 UTC' future.txt
        setfattr -n user.comment -v hello hello.txt
        setfattr -n trusted.secret -v 1 big.bin
        setfattr -n security.selinux -v 'system_u:object_r:etc_t:s0' dir/random.bin
        setfattr -h -n security.selinux -v 'system_u:object_r:etc_t:s0' abs-link
        setfacl -m u:1000:rwx,g:100:r dir && setfacl -d -m u:1000:rx,g::r dir
        : > many-xattrs.bin
        i=0; while [ $i -lt 80 ]; do setfattr -n "user.attribute-number-$i" -v "$(head -c $((i * 7 + 1)) /dev/zero | tr '\0' v)" many-xattrs.bin; i=$((i + 1)); done
        : > remote-xattr.bin
        setfattr -n user.big -v "0x$(head -c 6000 /dev/urandom | od -An -tx1 | tr -d ' \n')" remote-xattr.bin
        setfattr -n user.small -v x remote-xattr.bin
        touch -d '2001-02-03 04:05:06.123456789 UTC' hello.txt
        touch -h -d '1999-12-31 23:59:58.999999999 UTC' abs-link
        """#

    /// One file as the kernel shows it.
    struct KernelEntry: Sendable {
        var path: String
        var ino: UInt64
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        var size: UInt64
        var blocks: UInt64
        var links: UInt64
        var atime: Timestamp
        var mtime: Timestamp
        var ctime: Timestamp
        var rdevMajor: UInt32
        var rdevMinor: UInt32
        var target: [UInt8]?
        var bytes: [UInt8]?
        var dataRanges: [(offset: UInt64, length: UInt64)]?
        /// llistxattr/lgetxattr, sorted by name.
        var xattrs: [Xattr] = []
    }

    struct Image: Sendable {
        var path: String
        var entries: [KernelEntry]
        /// `stat -f` on the read-only mount: block size, blocks, free, available, files, free files.
        var statfs: [UInt64]
        func entry(_ path: String) -> KernelEntry? { entries.first { $0.path == path } }
    }

    private static let built = Locked<[String: Image]>([:])

    /// The image made with `configuration`'s mkfs options and the tree, and the kernel's view.
    static func image(_ configuration: String) throws -> Image {
        try built.withValue { images in
            if let image = images[configuration] { return image }
            guard scratch.ready, let options = configurations[configuration] else {
                throw Shell.Failure(command: "xfs fixture \(configuration)", status: 1, stderr: "no scratch directory or configuration")
            }
            let image = try make(name: configuration, mkfsOptions: options, script: populate)
            images[configuration] = image
            return image
        }
    }

    /// mkfs.xfs on a sparse file, `script` run in its kernel mount, then the read-only view.
    static func make(name: String, mkfsOptions: String, script: String, size: String = "400M") throws -> Image {
        let img = scratch.path + "/" + name + ".img", mnt = scratch.path + "/mnt-" + name
        let q = Shell.quote(img), m = Shell.quote(mnt)
        try Shell.check("rm -f \(q) && truncate -s \(size) \(q) && mkfs.xfs -q -f \(mkfsOptions) \(q) && mkdir -p \(m)")
        try Shell.check("mount -o loop \(q) \(m)")
        do {
            try Shell.check("cd \(m) && \(script)")
        } catch {
            _ = try? Shell.run("umount \(m)")
            throw error
        }
        try Shell.check("umount \(m) && mount -o loop,ro \(q) \(m)")
        defer { _ = try? Shell.run("umount \(m)") }
        let entries = kernelView(mnt)
        let statfs = try Shell.check("stat -f -c '%S %b %f %a %c %d' \(m)").split(separator: " ").compactMap {
            UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return Image(path: img, entries: entries, statfs: statfs)
    }

    /// lstat of every path below `root` (root itself as ""), with bytes and data ranges of
    /// regular files and the targets of symlinks.
    static func kernelView(_ root: String) -> [KernelEntry] {
        var out: [KernelEntry] = []
        func visit(_ relative: String) {
            let full = relative.isEmpty ? root : root + "/" + relative
            var st = stat()
            guard lstat(full, &st) == 0 else { return }
            func ts(_ t: timespec) -> Timestamp { Timestamp(seconds: Int64(t.tv_sec), nanoseconds: Int32(t.tv_nsec)) }
            var e = KernelEntry(path: relative, ino: UInt64(st.st_ino), mode: st.st_mode, uid: st.st_uid, gid: st.st_gid,
                                size: UInt64(st.st_size), blocks: UInt64(st.st_blocks), links: UInt64(st.st_nlink),
                                atime: ts(st.st_atim), mtime: ts(st.st_mtim), ctime: ts(st.st_ctim),
                                rdevMajor: UInt32((st.st_rdev >> 8) & 0xfff | (st.st_rdev >> 32) & 0xffff_f000),
                                rdevMinor: UInt32(st.st_rdev & 0xff | (st.st_rdev >> 12) & 0xffff_ff00))
            switch st.st_mode & S_IFMT {
            case S_IFLNK:
                var buffer = [Int8](repeating: 0, count: 4096)
                let n = readlink(full, &buffer, buffer.count)
                e.target = n >= 0 ? buffer.prefix(n).map { UInt8(bitPattern: $0) } : nil
            case S_IFREG:
                // SEEK_DATA first: once read, an unwritten extent's cached zero pages count as data.
                e.dataRanges = seekRanges(full, size: UInt64(st.st_size))
                e.bytes = FileManager.default.contents(atPath: full).map { [UInt8]($0) }
            case S_IFDIR:
                out.append(e)
                for name in ((try? FileManager.default.contentsOfDirectory(atPath: full)) ?? []).sorted() {
                    visit(relative.isEmpty ? name : relative + "/" + name)
                }
                return
            default: break
            }
            out.append(e)
        }
        visit("")
        let xattrs = kernelXattrs(root)
        for i in out.indices { out[i].xattrs = xattrs[out[i].path] ?? [] }
        return out
    }

    /// Every attribute of every path below `root` (relative path → attributes sorted by name),
    /// as os.listxattr/os.getxattr (llistxattr/lgetxattr) give them: the C calls are not in the
    /// Glibc module.
    static func kernelXattrs(_ root: String) -> [String: [Xattr]] {
        let script = """
            import json, os, sys
            root = sys.argv[1]; out = {}
            for d, dirs, files in os.walk(root):
                for n in [None] + dirs + files:
                    p = d if n is None else os.path.join(d, n)
                    if n is not None and os.path.isdir(p) and not os.path.islink(p): continue
                    rel = os.path.relpath(p, root); rel = "" if rel == "." else rel
                    out[rel] = [[a, os.getxattr(p, a, follow_symlinks=False).hex()] for a in os.listxattr(p, follow_symlinks=False)]
            print(json.dumps(out))
            """
        guard let text = try? Shell.check("python3 -c \(Shell.quote(script)) \(Shell.quote(root))"),
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: [[String]]] else { return [:] }
        func bytes(_ hex: String) -> [UInt8] {
            var out: [UInt8] = []
            var i = hex.startIndex
            while i < hex.endIndex, let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex), let b = UInt8(hex[i ..< j], radix: 16) {
                out.append(b); i = j
            }
            return out
        }
        return object.mapValues { $0.map { Xattr(name: $0[0], value: bytes($0[1])) }.sorted { $0.name < $1.name } }
    }

    /// The data ranges SEEK_DATA / SEEK_HOLE give.
    static func seekRanges(_ path: String, size: UInt64) -> [(offset: UInt64, length: UInt64)] {
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0 else { return [] }
        defer { Glibc.close(fd) }
        var out: [(offset: UInt64, length: UInt64)] = []
        var position: off_t = 0
        while UInt64(position) < size {
            let data = lseek(fd, position, 3 /* SEEK_DATA */)
            guard data >= 0 else { break }
            let hole = lseek(fd, data, 4 /* SEEK_HOLE */)
            guard hole > data else { break }
            out.append((offset: UInt64(data), length: UInt64(hole - data)))
            position = hole
        }
        return out
    }

    static func open(_ image: Image) throws -> XFSFilesystem {
        try XFSFilesystem(device: RawImage(path: image.path, writable: false))
    }

    /// A whole file through a `GuestFile`, in reads of `chunk` bytes.
    static func readAll(_ file: any GuestFile, chunk: Int = 1 << 20) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        var offset = 0
        while offset < bytes.count {
            let n = try bytes.withUnsafeMutableBytes {
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset ..< min($0.count, offset + chunk)]), at: UInt64(offset))
            }
            if n == 0 { break }
            offset += n
        }
        return bytes
    }
}
