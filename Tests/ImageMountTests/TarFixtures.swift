import Foundation
import Testing
import TestSupport

/// The tree tar-in and tar-out tests pack and unpack: modes (setuid, sticky, private), owners,
/// nanosecond times, user and trusted xattrs, access and default POSIX ACLs, hard links,
/// relative, absolute and dangling symlinks, a FIFO and device nodes, files with holes in the
/// middle, at the end and nothing but a hole, a Latin-1 name and a name too long for ustar.
enum TarFixtures {
    /// Builds the tree in `directory` (which must not exist yet).
    static func buildTree(_ directory: String) throws {
        try Shell.check("bash -c \(Shell.quote(buildScript)) build \(Shell.quote(directory))")
    }

    /// An ext4 image of the tree built by `mke2fs -d`, with nanosecond times set by debugfs
    /// afterwards (mke2fs -d keeps whole seconds only): on a file, a directory and a symlink.
    static func ext4Image(_ scratch: TempDir, name: String = "tree.img") throws -> (image: String, tree: String) {
        let tree = scratch.file("tree")
        try buildTree(tree)
        let image = scratch.file(name)
        try Shell.check("truncate -s 96M \(Shell.quote(image)) && mke2fs -F -q -t ext4 -d \(Shell.quote(tree)) \(Shell.quote(image))")
        for (path, ns) in [("/data/seq", 987_654_321), ("/etc", 500_000_001), ("/dangling", 123_456_789)] {
            try Shell.check("debugfs -w -R 'sif \(path) mtime_extra \(ns << 2)' \(Shell.quote(image)) 2>&1")
        }
        return (image, tree)
    }

    /// One line per entry below `root` (path, mode, owner, mtime in ns, size and a hash of the
    /// contents, link target, device number, every xattr in hex, the names sharing an inode),
    /// sorted; the top-level names in `skip` are left out.
    static func listing(_ root: String, skip: [String] = []) throws -> String {
        let script = try scriptFile()
        return try Shell.check("python3 \(Shell.quote(script)) \(Shell.quote(root)) \(skip.map(Shell.quote).joined(separator: " "))")
    }

    /// Mounts an ext4 (or any kernel-mountable) image read-only through a loop device, runs
    /// `body` with the mount point, and always unmounts.
    static func withKernelMount<T>(_ image: String, _ body: (String) throws -> T) throws -> T {
        let dir = try TempDir("tar-kernel-mnt")
        try Shell.check("mount -o ro,loop,noload \(Shell.quote(image)) \(Shell.quote(dir.path))")
        defer { _ = try? Shell.run("umount \(Shell.quote(dir.path)) || umount -l \(Shell.quote(dir.path))") }
        return try body(dir.path)
    }

    /// Allocated bytes of a host file (st_blocks × 512).
    static func allocated(_ path: String) throws -> Int {
        Int(try Shell.check("stat -c %b \(Shell.quote(path))").trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 * 512 } ?? -1
    }

    private static let scripts = Locked<String?>(nil)
    private static let holder = Locked<TempDir?>(nil)

    private static func scriptFile() throws -> String {
        try scripts.withValue { path in
            if let path { return path }
            let dir = try TempDir("tar-lister")
            holder.value = dir
            let file = dir.file("list.py")
            try listScript.write(toFile: file, atomically: true, encoding: .utf8)
            path = file
            return file
        }
    }

    static let buildScript = #"""
set -e
T="$1"
mkdir -p "$T/etc" "$T/data/deep/er" "$T/acl/inner" "$T/sub" "$T/empty-dir"
printf 'tar-guest\n' > "$T/etc/hostname"
printf 'secret\n' > "$T/etc/secret"; chmod 600 "$T/etc/secret"
seq 1 30000 > "$T/data/seq"
seq 1 400000 > "$T/data/big"
: > "$T/data/empty"
truncate -s 8M "$T/data/sparse"
printf 'start' | dd of="$T/data/sparse" conv=notrunc status=none
printf 'middle' | dd of="$T/data/sparse" bs=1 seek=3145728 conv=notrunc status=none
printf 'end' | dd of="$T/data/sparse" bs=1 seek=8388605 conv=notrunc status=none
truncate -s 1M "$T/data/all-hole"
printf 'head' > "$T/data/tail-hole"; truncate -s 2M "$T/data/tail-hole"
ln "$T/data/seq" "$T/data/seq-link"; ln "$T/data/seq" "$T/etc/seq-link2"
ln -s ../etc/hostname "$T/data/rel-link"; ln -s /etc/hostname "$T/abs-link"; ln -s nowhere "$T/dangling"
mkfifo "$T/data/fifo"; mknod "$T/data/null" c 1 3; mknod "$T/data/blk" b 7 200
printf s > "$T/data/setuid"; chmod 4711 "$T/data/setuid"; chmod 1777 "$T/sub"
chown 1000:1000 "$T/data/seq"; chown -h 42:43 "$T/dangling"; chown 7:8 "$T/sub"
setfattr -n user.comment -v hello "$T/etc/hostname"
setfattr -n user.binary -v 0x00ff10 "$T/data/seq"
setfattr -n trusted.secret -v shh "$T/etc/secret"
printf acl > "$T/acl/file"
setfacl -m u:1234:rwx,g:99:r-x "$T/acl/file"
setfacl -d -m u:1234:rwx "$T/acl"
setfacl -m u:5:r "$T/acl"
printf x > "$T/data/caf$(printf '\351')"
long=$(printf 'n%.0s' $(seq 1 200)); printf long > "$T/data/deep/er/$long"
touch -d '1999-12-31 23:59:59.987654321' "$T/data/seq"
touch -h -d '2001-02-03 04:05:06.123456789' "$T/dangling"
touch -d '2005-05-05 05:05:05.5' "$T/data/deep/er" "$T/data/deep" "$T/etc" "$T/acl" "$T/sub" "$T/empty-dir"
"""#

    static let listScript = #"""
import os, sys, stat, hashlib
root = sys.argv[1].encode()
skip = set(a.encode() for a in sys.argv[2:])
out = []
groups = {}
paths = []
def walk(rel):
    full = os.path.join(root, rel) if rel else root
    paths.append(rel)
    st = os.lstat(full)
    if stat.S_ISDIR(st.st_mode):
        for n in sorted(os.listdir(full)):
            r = os.path.join(rel, n) if rel else n
            if r in skip: continue
            walk(r)
walk(b'')
for rel in paths:
    full = os.path.join(root, rel) if rel else root
    st = os.lstat(full)
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
for rel in paths:
    full = os.path.join(root, rel) if rel else root
    st = os.lstat(full)
    m = st.st_mode
    f = [repr(rel or b'.'), oct(m), str(st.st_uid), str(st.st_gid), str(st.st_mtime_ns)]
    if stat.S_ISREG(m):
        h = hashlib.sha256()
        with open(full, 'rb') as fh:
            while True:
                b = fh.read(1 << 20)
                if not b: break
                h.update(b)
        f += [str(st.st_size), h.hexdigest()[:16], 'nlink=%d' % st.st_nlink]
        if st.st_nlink > 1: f.append('links=' + repr(groups[(st.st_dev, st.st_ino)]))
    elif stat.S_ISLNK(m):
        f.append('-> ' + repr(os.readlink(full)))
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        f.append('rdev=%d,%d' % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    try:
        xs = sorted(os.listxattr(full, follow_symlinks=False))
    except OSError:
        xs = []
    for x in xs:
        f.append('%s=%s' % (x, os.getxattr(full, x, follow_symlinks=False).hex()))
    out.append(' '.join(f))
print('\n'.join(out))
"""#
}
