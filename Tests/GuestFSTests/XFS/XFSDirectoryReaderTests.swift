import Foundation
@testable import GuestFS
import Testing
import TestSupport

/// XFSDirectoryReader over real mkfs.xfs images filled on a kernel loop mount, against what the
/// kernel's readdir and stat show of the same directories (names, inode numbers, d_type), and
/// for v4 images (the kernel refuses them) against the prototype tree and xfs_db.
@Suite(.serialized) struct XFSDirectoryReaderTests {
    /// Creates `count` empty files named `prefix%06d` (and a few other types) in `dir`.
    static func fill(_ dir: String, count: Int, prefix: String = "file-") throws {
        try Shell.check("""
            python3 -c 'import os,sys
            d=sys.argv[1]
            for i in range(int(sys.argv[2])): os.close(os.open(d+"/"+sys.argv[3]+"%06d"%i, os.O_CREAT|os.O_WRONLY, 0o644))' \
            \(Shell.quote(dir)) \(count) \(Shell.quote(prefix))
            """)
    }

    /// Our listing of `dir` equals the kernel's, every name looks up to its inode through the
    /// hash index, and names that are not there look up to nil.
    func expectSame(_ image: XFSDbImage, _ ino: UInt64, _ kernel: [[UInt8]: (ino: UInt64, type: UInt8)], parent: UInt64,
                    form: String, caseFold: Bool = false, sample: Int = .max) throws {
        let reader = try image.directory(ino)
        let entries = try reader.entries()
        #expect(entries.count == kernel.count, "\(form): \(entries.count) entries, the kernel lists \(kernel.count)")
        let ours = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(ours.count == entries.count, "\(form): a name is listed twice")
        var mismatches = 0
        for (name, want) in kernel {
            guard let got = ours[name] else { mismatches += 1; continue }
            if got.inode != want.ino || (image.geometry.hasFtype && got.nodeType.rawValue != want.type) { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(form): \(mismatches) names differ from the kernel's")
        #expect(try reader.parent() == parent, "\(form): parent")
        var checked = 0
        for (name, want) in kernel where checked < sample {
            checked += 1
            #expect(try reader.lookup(name) == want.ino, "\(form): lookup \(String(decoding: name, as: UTF8.self))")
            if caseFold {
                let upper = name.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }
                #expect(try reader.lookup(upper) == want.ino, "\(form): case-insensitive lookup")
            }
        }
        #expect(try reader.lookup([0x2E]) == ino && reader.lookup([0x2E, 0x2E]) == parent, "\(form): . and ..")
        if let some = entries.last { #expect(try reader.lookupEntry(some.name) == some, "\(form): lookupEntry gives the listed entry") }
        #expect(try reader.lookup(Array("no-such-name".utf8)) == nil)
        #expect(try reader.lookup(Array("file-9999999".utf8)) == nil)
        // Cookies increase, and listing page by page from the last cookie + 1 gives the same.
        #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.cookie < $1.cookie }, "\(form): cookies increase")
        var paged: [XFSDirectoryEntry] = []
        var from: UInt64 = 0
        while true {
            var page: [XFSDirectoryEntry] = []
            try reader.forEachEntry(from: from) { page.append($0); return page.count < 997 }
            paged += page
            guard page.count == 997, let last = page.last else { break }
            from = last.cookie + 1
        }
        #expect(paged == entries, "\(form): paged listing")
    }

    /// mkfs.xfs defaults (v5, ftype, 4 KiB blocks): shortform, block, leaf and node directories.
    @Test func v5DirectoriesOfEverySizeMatchTheKernel() throws {
        let image = try XFSDbImage()
        let sizes = [0, 5, 60, 500, 50_000]
        let kernel = try image.withMount { mnt -> [(Int, UInt64, [[UInt8]: (ino: UInt64, type: UInt8)], UInt64)] in
            try image.sh("mkdir top && mkfifo top/fifo && ln -s target top/link && mkdir top/sub && mknod top/chr c 1 3 && mknod top/blk b 7 0")
            return try sizes.map { n in
                let d = mnt + "/top/d\(n)"
                try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)
                try Self.fill(d, count: n)
                return (n, try KernelView.inode(d), try KernelView.directory(d), try KernelView.inode(mnt + "/top"))
            } + [(-1, try KernelView.inode(mnt + "/top"), try KernelView.directory(mnt + "/top"), try KernelView.inode(mnt))]
        }
        var formats: [Int: Int] = [:]
        for (n, ino, view, parent) in kernel {
            let forks = try image.forks(ino)
            formats[n] = forks.format
            try expectSame(image, ino, view, parent: parent, form: "v5 \(n) entries", sample: 2_000)
        }
        #expect(formats[0] == 1 && formats[5] == 1 && formats[-1] == 1, "small directories are shortform")
        #expect(formats[500] == 2 && formats[50_000] != 1)
        // Which form each directory took, by what its blocks hold.
        let d60 = try image.forks(kernel[2].1)
        if case .extents(let e) = d60.data { #expect(e.count == 1, "60 entries make a block directory") }
        if case .extents(let e) = try image.forks(kernel[3].1).data {
            #expect(e.contains { $0.fileOffset == XFSDirectoryFormat.leafSpaceByte >> 12 }, "500 entries have a leaf block")
        }
    }

    /// A lookup in a big node directory reads a handful of blocks, not the directory.
    @Test func lookupsIn200000EntryDirectoryFollowTheHashIndex() throws {
        let image = try XFSDbImage(sizeMiB: 1024)
        let (ino, view, parent) = try image.withMount { mnt in
            try image.sh("mkdir big")
            try Self.fill(mnt + "/big", count: 200_000)
            return (try KernelView.inode(mnt + "/big"), try KernelView.directory(mnt + "/big"), try KernelView.inode(mnt))
        }
        #expect(view.count == 200_000)
        let reader = try image.directory(ino)
        let start = Date()
        let entries = try reader.entries()
        let listSeconds = Date().timeIntervalSince(start)
        #expect(entries.count == 200_000)
        #expect(Set(entries.map(\.name)) == Set(view.keys))
        #expect(try reader.parent() == parent)
        var checked = 0
        var maxReads = 0
        let lookupStart = Date()
        for (name, want) in view where checked < 5_000 {
            checked += 1
            image.reads.value = 0
            #expect(try reader.lookup(name) == want.ino)
            maxReads = max(maxReads, image.reads.value)
        }
        let perLookup = Date().timeIntervalSince(lookupStart) / Double(checked) * 1e6
        print("XFS 200000-entry directory: list \(String(format: "%.2f", listSeconds)) s, lookup \(String(format: "%.0f", perLookup)) µs, at most \(maxReads) block reads per lookup")
        // root node (+ maybe one more level), leaf, one data block: a scan would read ~1500 blocks.
        #expect(maxReads <= 6)
        #expect(try reader.lookup(Array("file-200000".utf8)) == nil)
    }

    /// Free space cut into single blocks: a file fills the free space and every other block of
    /// its first `mib` MiB is punched out, so directory blocks grown afterwards (by hard links,
    /// which need no inode) land in one-block holes, split over extents that are not adjacent.
    static func fragmentFreeSpace(_ mnt: String, mib: Int) throws {
        try Shell.check("""
            python3 -c 'import os,sys,ctypes
            libc=ctypes.CDLL(None, use_errno=True)
            p=sys.argv[1]+"/filler"; fd=os.open(p, os.O_CREAT|os.O_WRONLY, 0o644)
            st=os.statvfs(sys.argv[1]); size=st.f_bavail*st.f_frsize
            while size > 0:
                try: os.posix_fallocate(fd, 0, size); break
                except OSError: size -= 1<<20
            bs=st.f_frsize; n=0
            for chunk in (1<<24, 1<<20, 1<<16, bs):
                while True:
                    n+=1; q=p+str(n)
                    try: f=os.open(q, os.O_CREAT|os.O_WRONLY, 0o644)
                    except OSError: break
                    try: os.posix_fallocate(f, 0, chunk); os.close(f)
                    except OSError: os.close(f); os.unlink(q); break
            for off in range(0, int(sys.argv[2])<<20, 2*bs):
                assert libc.fallocate(fd, 3, ctypes.c_long(off), ctypes.c_long(bs)) == 0
            os.close(fd)' \(Shell.quote(mnt)) \(mib)
            """)
    }

    /// Adds `count` hard links to `target` into `dir`.
    static func link(_ target: String, into dir: String, count: Int, prefix: String) throws {
        try Shell.check("""
            python3 -c 'import os,sys
            for i in range(int(sys.argv[3])): os.link(sys.argv[1], sys.argv[2]+"/"+sys.argv[4]+"%06d"%i)' \
            \(Shell.quote(target)) \(Shell.quote(dir)) \(count) \(Shell.quote(prefix))
            """)
    }

    /// Directory blocks of 8 KiB over 4 KiB filesystem blocks (-n size=8192), and 1 KiB
    /// filesystem blocks (-b size=1024): each directory block spans several filesystem blocks,
    /// here over fragmented free space so they are split across discontiguous extents (and
    /// the big directory's extent list becomes a bmbt: a B+tree directory).
    @Test(arguments: ["-n size=8192", "-b size=1024", "-b size=1024 -n size=16384"])
    func multiBlockDirectoryBlocks(options: String) throws {
        let image = try XFSDbImage(options)
        let (dirs, root) = try image.withMount { mnt in
            try image.sh("mkdir a b && touch target")
            try Self.fill(mnt + "/a", count: 200)
            try Self.fragmentFreeSpace(mnt, mib: 24)
            try Self.link(mnt + "/target", into: mnt + "/a", count: 400, prefix: "l-")
            try Self.link(mnt + "/target", into: mnt + "/b", count: 20_000, prefix: "l-")
            return (try ["a", "b"].map { (try KernelView.inode(mnt + "/" + $0), try KernelView.directory(mnt + "/" + $0)) },
                    try KernelView.inode(mnt))
        }
        #expect(image.geometry.dirBlockLog > 0)
        for (ino, view) in dirs { try expectSame(image, ino, view, parent: root, form: options, sample: 1_000) }
        #expect(try image.forks(dirs[1].0).format == 3, "\(options): the big directory's extents are in a bmbt")
        // The allocator keeps each directory block in one piece even on fragmented free space
        // (mkfs.xfs 6.1, kernel 6.18); split them ourselves: the
        // second and later filesystem blocks of each directory block move (for the reader) to
        // far-away, out-of-order places, the first stays where its v5 header says it is.
        for (ino, view) in dirs {
            guard case .extents(let original) = try image.forks(ino).data else { continue }
            let g = image.geometry!
            let per = UInt64(1) << UInt64(g.dirBlockLog)
            var moved: [XFSExtent] = []
            var backing: [UInt64: UInt64] = [:]
            let far = UInt64(g.agCount - 1) << UInt64(g.agBlockLog) + UInt64(g.agBlocks) / 2
            var next: UInt64 = 0
            for e in original {
                for i in 0 ..< e.blockCount {
                    let logical = e.fileOffset + i, physical = e.startBlock + i
                    if logical % per == 0 {
                        moved.append(XFSExtent(fileOffset: logical, startBlock: physical, blockCount: 1, unwritten: false))
                    } else {
                        let virtual = far + (next * 7919) % (UInt64(g.agBlocks) / 4)
                        next += 1
                        backing[virtual] = physical
                        moved.append(XFSExtent(fileOffset: logical, startBlock: virtual, blockCount: 1, unwritten: false))
                    }
                }
            }
            #expect(Set(backing.keys).count == backing.count)
            let inner = image.reader
            let read: XFSBlockReader = { fsblock, count in
                try (0 ..< UInt64(count)).flatMap { try inner(backing[fsblock + $0] ?? (fsblock + $0), 1) }
            }
            let reader = XFSDirectoryReader(geometry: g, inode: ino, fork: .extents(moved.shuffled()), size: 0, read: read)
            let entries = try reader.entries()
            #expect(Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.inode) }) == view.mapValues(\.ino), "\(options): split blocks")
            for (name, want) in view.prefix(300) { #expect(try reader.lookup(name) == want.ino) }
        }
        #expect(try image.forks(dirs[1].0).format == 3, "\(options): the big directory's extents are in a bmbt")
    }

    /// Parses `xfs_db -r -c 'ls <path>'`: offset, inode, type, hash, length, name.
    static func dbList(_ image: XFSDbImage, _ path: String) throws -> [(ino: UInt64, type: String, hash: UInt32, name: [UInt8])] {
        let out = try Shell.check("xfs_db -r -c \(Shell.quote("ls " + path)) \(Shell.quote(image.path))")
        return out.split(separator: "\n").compactMap { line in
            let w = line.split(separator: " ", omittingEmptySubsequences: true)
            guard w.count >= 7, let ino = UInt64(w[1]), w[3].hasPrefix("0x"), let hash = UInt32(w[3].dropFirst(2), radix: 16) else { return nil }
            return (ino, String(w[2]), hash, Array(w[5].utf8))
        }
    }

    /// A prototype (mkfs.xfs -p) of directories `d<n>` each holding n empty files named
    /// `prefix%06d`, plus a symlink and a subdirectory in `top`.
    static func proto(_ sizes: [Int], prefix: String = "file-") -> String {
        var lines = ["/dev/null", "0 0", "d--755 0 0", "top d--755 0 0", " link l--777 0 0 target", " sub d--755 0 0", " $"]
        for n in sizes {
            lines.append(" d\(n) d--755 0 0")
            for i in 0 ..< n { lines.append("  \(prefix)\(String(format: "%06d", i)) ---644 0 0 /dev/null") }
            lines.append(" $")
        }
        return (lines + ["$", "$"]).joined(separator: "\n") + "\n"
    }

    /// Filesystems this kernel will not mount, built from a prototype and compared with it and
    /// with xfs_db: v4 without ftype (-m crc=0 -n ftype=0), v4 with ftype, v4 with 8 KiB
    /// directory blocks over 1 KiB blocks, and ascii-ci (the
    /// kernel dropped ascii-ci support) where names hash and compare with A–Z folded.
    @Test(arguments: ["-m crc=0 -n ftype=0", "-m crc=0", "-n version=ci", "-m crc=0 -n version=ci,ftype=0", "-m crc=0 -b size=1024 -n size=8192,ftype=0"])
    func prototypeFilesystemsMatchTheirTreeAndXfsDb(options: String) throws {
        let sizes = [3, 60, 500, 20_000]
        let ci = options.contains("ci")
        let image = try XFSDbImage(options: options, proto: Self.proto(sizes, prefix: ci ? "Mixed-" : "file-"))
        #expect(image.geometry.isV5 == !options.contains("crc=0"))
        #expect(image.geometry.hasFtype == !options.contains("ftype=0"))
        #expect(image.geometry.asciiCI == ci)
        for n in [-1] + sizes {
            let path = n < 0 ? "/top" : "/top/d\(n)"
            let listed = try Self.dbList(image, path)
            let ino = try #require(listed.first { $0.name == [0x2E] }?.ino)
            let parent = try #require(listed.first { $0.name == [0x2E, 0x2E] }?.ino)
            let want = listed.filter { $0.name != [0x2E] && $0.name != [0x2E, 0x2E] }
            #expect(want.count == (n < 0 ? sizes.count + 2 : n), "\(options) \(path): xfs_db lists \(want.count)")
            var view: [[UInt8]: (ino: UInt64, type: UInt8)] = [:]
            for e in want {
                let type: UInt8 = switch e.type { case "directory": 4; case "regular": 8; case "symlink": 10; default: 0 }
                view[e.name] = (e.ino, type)
                // Our hash is the one the image was built with (xfs_db prints the stored hash).
                #expect(XFSNameHash.hash(e.name, caseFold: ci) == e.hash, "\(options): hash of \(String(decoding: e.name, as: UTF8.self))")
            }
            try expectSame(image, ino, view, parent: parent, form: "\(options) \(path)", caseFold: ci, sample: 2_000)
        }
    }

    /// Directories on a filesystem large enough that inode numbers pass 2^32: shortform
    /// directories then store 8-byte inode numbers (i8count > 0).
    @Test func shortformWithEightByteInodeNumbers() throws {
        let image = try XFSDbImage("-d agcount=5 -l size=64m", sizeMiB: 4 * 1024 * 1024)
        let found = try image.withMount { mnt -> (UInt64, [[UInt8]: (ino: UInt64, type: UInt8)], UInt64)? in
            for i in 0 ..< 16 {
                let d = mnt + "/spread\(i)"
                try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)
                let ino = try KernelView.inode(d)
                if ino > UInt64(UInt32.max) {
                    try Self.fill(d, count: 4)
                    try image.sh("mkdir spread\(i)/sub")
                    return (ino, try KernelView.directory(d), try KernelView.inode(mnt))
                }
            }
            return nil
        }
        let (ino, view, parent) = try #require(found, "no directory got an inode number above 2^32")
        guard case .local(let bytes) = try image.forks(ino).data else { Issue.record("not shortform"); return }
        #expect(bytes[1] > 0, "i8count")
        try expectSame(image, ino, view, parent: parent, form: "shortform i8")
    }
}

/// Names that all share one xfs_da_hashname value, so that their hash index entries fill
/// several leaves and a lookup must follow the leaves' forward links (xfs_da3_path_shift).
/// 8-byte names of printable ASCII: the hash of the second 4 bytes is their 7-bit groups side
/// by side, so for any first half whose hash has zero low bits the second half is solved for.
enum XFSHashCollisions {
    static func names(_ count: Int) -> [[UInt8]] {
        let target: UInt32 = 0x61 << 21 | 0x62 << 14 | 0x63 << 7 | 0x64
        let printable = (UInt8(0x30) ... 0x7A).filter { $0 != 0x2F }
        func ok(_ c: UInt32) -> Bool { c >= 0x21 && c <= 0x7E && c != 0x2F }
        var out: [[UInt8]] = []
        for a in printable { for b in printable { for c in printable { for d: UInt8 in [0x30, 0x40, 0x50, 0x60, 0x70] {
            let first = [a, b, c, d]
            let v = target ^ (XFSNameHash.hash(first) >> 4)
            guard v >> 28 == 0 else { continue }
            let second = [v >> 21 & 0x7F, v >> 14 & 0x7F, v >> 7 & 0x7F, v & 0x7F]
            guard second.allSatisfy(ok) else { continue }
            out.append(first + second.map { UInt8($0) })
            if out.count == count { return out }
        } } } }
        return out
    }

    /// Writes the names one per line to a file for the python helpers.
    static func file(_ names: [[UInt8]], in dir: String) throws -> String {
        let path = dir + "/names.txt"
        try Data(names.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}

extension XFSDirectoryReaderTests {
    /// 1 500 names with one hash (their index entries span three 4 KiB leaves) among 3 000 others.
    @Test func namesSharingOneHashAcrossLeaves() throws {
        let names = XFSHashCollisions.names(1_501)
        #expect(names.count == 1_501)
        #expect(Set(names.map { XFSNameHash.hash($0) }).count == 1)
        let image = try XFSDbImage()
        let listFile = try XFSHashCollisions.file(Array(names.prefix(1_500)), in: image.dir)
        let (ino, view) = try image.withMount { mnt in
            try image.sh("mkdir c")
            try Self.fill(mnt + "/c", count: 3_000)
            try Shell.check("python3 -c 'import os,sys\nfor n in open(sys.argv[1]).read().split(\"\\n\"): os.close(os.open(sys.argv[2]+\"/\"+n, os.O_CREAT|os.O_WRONLY, 0o644))' \(Shell.quote(listFile)) \(Shell.quote(mnt + "/c"))")
            return (try KernelView.inode(mnt + "/c"), try KernelView.directory(mnt + "/c"))
        }
        #expect(view.count == 4_500)
        try expectSame(image, ino, view, parent: 128, form: "hash collisions", sample: 0)
        let reader = try image.directory(ino)
        for name in names.prefix(1_500).enumerated().filter({ $0.offset % 5 == 0 || $0.offset > 1_480 }).map(\.element) {
            #expect(try reader.lookup(name) == view[name]?.ino, "\(String(decoding: name, as: UTF8.self))")
        }
        #expect(try reader.lookup(names[1_500]) == nil, "same hash, not there")
    }
}
