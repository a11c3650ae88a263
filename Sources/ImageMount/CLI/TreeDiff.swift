import GuestFSBlock
import GuestFSFilesystem
import GuestFS

/// The comparison of two guest trees that `imagemount diff` prints (guestfs-tools
/// `diff/diff.c`).
///
/// virt-diff visits each tree whole (the top directory, then each directory's sorted names,
/// descending into a directory right after its own entry) and then merges the two lists by
/// `strcmp` of the paths. That order is not `strcmp` order when a name holds a byte below '/'
/// ("a.b" after "a/x"), so here the two trees are walked together instead, directory by
/// directory: the same records in the same walk order, with no misaligned merge. Walking
/// together is also what lets `DiffScope` skip a subtree that cannot differ.
struct TreeDiff {
    struct Settings {
        var atime = false
        var csv = false
        var dirLinks = false
        var dirTimes = false
        var extraStats = false
        var human = false
        var uids = false
        var xattrs = false
        var checksum: String?
        var timeStyle = TimeStyle.none
        var now: Int64 = 0
    }

    /// How --times and its variants show a time (diff.c `output_int64_time`).
    enum TimeStyle { case none, calendar, epoch, secondsAgo, daysAgo }

    /// One path's record, its status flattened as diff.c `visit_entry` does.
    struct File {
        let path: [UInt8]
        let node: GuestNode
        let tree: MountTree
        var stat: NodeAttributes
        let xattrs: [Xattr]
        let device: (major: Int, minor: Int)
        let blockSize: UInt32
        var checksum: String?
        var isRegular: Bool { stat.isRegular }
        var isDirectory: Bool { stat.isDirectory }
    }

    let first: MountTree
    let second: MountTree
    let settings: Settings
    /// What cannot differ (nil: compare everything).
    let scope: DiffScope?
    private var out = OutputBuffer()
    private var firstPath: DirectoryWalkPath
    private var secondPath: DirectoryWalkPath

    init(first: MountTree, second: MountTree, settings: Settings, scope: DiffScope?) {
        self.first = first
        self.second = second
        self.settings = settings
        self.scope = scope
        self.firstPath = DirectoryWalkPath(top: first.root)
        self.secondPath = DirectoryWalkPath(top: second.root)
    }

    mutating func run() throws {
        try both([0x2F], first.root, second.root, depth: 0)
        try out.flush()
    }

    // MARK: The walk

    /// A directory's entries, sorted bytewise (guestfs_ls), without "." and "..".
    func sortedEntries(_ tree: MountTree, _ dir: GuestNode) throws -> [(name: [UInt8], node: GuestNode)] {
        try tree.entries(dir) { Diagnostics.warn($0.message) }
            .filter { $0.name != [0x2E] && $0.name != [0x2E, 0x2E] }
            .map { ($0.name, $0.node) }
            .sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    static func child(_ dir: [UInt8], _ name: [UInt8]) -> [UInt8] {
        dir == [0x2F] ? dir + name : dir + [0x2F] + name
    }

    /// A path present in both trees: its two records compared, then its children merged.
    mutating func both(_ path: [UInt8], _ a: GuestNode, _ b: GuestNode, depth: Int) throws {
        if let scope, a == b, !scope.mayDiffer(a) {
            // The same node, unchanged: its record is the same on both sides, and so is its
            // listing. Below it, only what the scope says may differ is visited.
            guard scope.leadsToChange(a), try second.attributes(b).isDirectory else { return }
            guard try enter(path, a, b, depth: depth) else { return }
            defer { leave(a, b) }
            for entry in try sortedEntries(second, b) {
                try both(Self.child(path, entry.name), entry.node, entry.node, depth: depth + 1)
            }
            return
        }
        let fa = try load(first, path, a), fb = try load(second, path, b)
        try compare(fa, fb)
        switch (fa.isDirectory, fb.isDirectory) {
        case (true, true):
            guard try enter(path, a, b, depth: depth) else { return }
            defer { leave(a, b) }
            let ea = try sortedEntries(first, a), eb = try sortedEntries(second, b)
            var i = 0, j = 0
            while i < ea.count || j < eb.count {
                if j == eb.count || (i < ea.count && ea[i].name.lexicographicallyPrecedes(eb[j].name)) {
                    try one(first, Self.child(path, ea[i].name), ea[i].node, marker: "-", depth: depth + 1)
                    i += 1
                } else if i == ea.count || eb[j].name.lexicographicallyPrecedes(ea[i].name) {
                    try one(second, Self.child(path, eb[j].name), eb[j].node, marker: "+", depth: depth + 1)
                    j += 1
                } else {
                    try both(Self.child(path, ea[i].name), ea[i].node, eb[j].node, depth: depth + 1)
                    i += 1
                    j += 1
                }
            }
        case (true, false):
            try children(first, path, a, marker: "-", depth: depth)
        case (false, true):
            try children(second, path, b, marker: "+", depth: depth)
        case (false, false):
            break
        }
    }

    /// A path in one tree only: its record and every record below it, with `marker`.
    mutating func one(_ tree: MountTree, _ path: [UInt8], _ node: GuestNode, marker: String, depth: Int) throws {
        var file = try load(tree, path, node)
        try withChecksum(&file)
        try line(marker, file)
        if file.isDirectory { try children(tree, path, node, marker: marker, depth: depth) }
    }

    mutating func children(_ tree: MountTree, _ path: [UInt8], _ dir: GuestNode, marker: String, depth: Int) throws {
        let isFirst = tree === first
        guard depth < DirectoryWalkPath.maxDepth else {
            Diagnostics.warn(DirectoryWalkPath.depthWarning(path: String(decoding: path, as: UTF8.self)))
            return
        }
        // A directory already on this tree's path is a loop: its own record is shown, not
        // what is below it (as ls -lR does).
        let entered = isFirst ? firstPath.enter(dir) : secondPath.enter(dir)
        guard entered || depth == 0 else {
            Diagnostics.warn(tree.loopWarning(path: String(decoding: path, as: UTF8.self), node: dir))
            return
        }
        defer { if entered { if isFirst { firstPath.leave(dir) } else { secondPath.leave(dir) } } }
        for entry in try sortedEntries(tree, dir) {
            try one(tree, Self.child(path, entry.name), entry.node, marker: marker, depth: depth + 1)
        }
    }

    /// Enters a directory present in both trees: false (with a warning) for a loop or a walk
    /// too deep.
    mutating func enter(_ path: [UInt8], _ a: GuestNode, _ b: GuestNode, depth: Int) throws -> Bool {
        guard depth < DirectoryWalkPath.maxDepth else {
            Diagnostics.warn(DirectoryWalkPath.depthWarning(path: String(decoding: path, as: UTF8.self)))
            return false
        }
        if depth == 0 { return true }
        guard firstPath.enter(a) else {
            Diagnostics.warn(first.loopWarning(path: String(decoding: path, as: UTF8.self), node: a))
            return false
        }
        guard secondPath.enter(b) else {
            firstPath.leave(a)
            Diagnostics.warn(second.loopWarning(path: String(decoding: path, as: UTF8.self), node: b))
            return false
        }
        return true
    }

    mutating func leave(_ a: GuestNode, _ b: GuestNode) {
        if a != first.root { firstPath.leave(a) }
        if b != second.root { secondPath.leave(b) }
    }

    // MARK: Records

    /// lstat and lgetxattrs of one path, flattened as diff.c `visit_entry` does: atime unless
    /// --atime, a directory's link count unless --dir-links, its times unless --dir-times.
    func load(_ tree: MountTree, _ path: [UInt8], _ node: GuestNode) throws -> File {
        let fs = tree.filesystem(of: node)
        var stat = try tree.attributes(node)
        let xattrs = try fs.xattrs(node.inode)
        let zero = Timestamp(seconds: 0, nanoseconds: 0)
        if !settings.atime { stat.atime = zero }
        if !settings.dirLinks && stat.isDirectory { stat.links = 0 }
        if !settings.dirTimes && stat.isDirectory { stat.atime = zero; stat.mtime = zero; stat.ctime = zero }
        return File(path: path, node: node, tree: tree, stat: stat, xattrs: xattrs,
                    device: Lister.deviceNumber(tree.mounts[node.mount].deviceName), blockSize: fs.blockSize, checksum: nil)
    }

    /// guestfs_checksum of a regular file, when --checksum asked for one.
    func withChecksum(_ file: inout File) throws {
        guard let type = settings.checksum, file.isRegular, file.checksum == nil else { return }
        file.checksum = try Lister.checksum(type, of: file.tree.filesystem(of: file.node).openFile(file.node.inode))
    }

    /// The statns fields that differ, in `guestfs_compare_statns` order, with the names
    /// diff.c's `COMPARE_STAT` prints (nanoseconds count as a difference but are not named).
    static func differences(_ a: File, _ b: File) -> (any: Bool, named: [String]) {
        let x = a.stat, y = b.stat
        var named: [String] = []
        var any = false
        func check(_ name: String?, _ differs: Bool) {
            guard differs else { return }
            any = true
            if let name { named.append(name) }
        }
        check("st_dev", a.device.major != b.device.major || a.device.minor != b.device.minor)
        check("st_ino", x.node != y.node)
        check("st_mode", x.mode != y.mode)
        check("st_nlink", x.links != y.links)
        check("st_uid", x.uid != y.uid)
        check("st_gid", x.gid != y.gid)
        check("st_rdev", x.rdevMajor != y.rdevMajor || x.rdevMinor != y.rdevMinor)
        check("st_size", x.size != y.size)
        check("st_blksize", a.blockSize != b.blockSize)
        check("st_blocks", x.blocks512 != y.blocks512)
        check("st_atime_sec", x.atime.seconds != y.atime.seconds)
        check(nil, x.atime.nanoseconds != y.atime.nanoseconds)
        check("st_mtime_sec", x.mtime.seconds != y.mtime.seconds)
        check(nil, x.mtime.nanoseconds != y.mtime.nanoseconds)
        check("st_ctime_sec", x.ctime.seconds != y.ctime.seconds)
        check(nil, x.ctime.nanoseconds != y.ctime.nanoseconds)
        return (any, named)
    }

    /// diff.c `diff_guests` for one path in both trees, then `changed`.
    mutating func compare(_ fa: File, _ fb: File) throws {
        var fa = fa, fb = fb
        let stats = Self.differences(fa, fb)
        let xattrsDiffer = fa.xattrs != fb.xattrs
        try withChecksum(&fa)
        try withChecksum(&fb)
        let checksumsDiffer = fa.checksum != nil && fb.checksum != nil && fa.checksum != fb.checksum
        guard stats.any || xattrsDiffer || checksumsDiffer else { return }
        let contentChanged = checksumsDiffer || (fa.isRegular && fb.isRegular
            && (fa.stat.mtime.seconds != fb.stat.mtime.seconds || fa.stat.ctime.seconds != fb.stat.ctime.seconds
                || fa.stat.size != fb.stat.size))
        if contentChanged {
            try line("=", fa)
            if !settings.csv {
                try out.flush()
                try showChanges(fa, fb)
            }
        } else {
            try line("-", fa)
            try line("+", fb)
            var fields = RecordFields(csv: settings.csv)
            fields.add(string: "#")
            fields.add(string: "changed:")
            for name in stats.named { fields.add(string: name) }
            if xattrsDiffer { fields.add(string: "xattrs") }
            out.append(fields.line)
            try out.endLine()
        }
    }

    /// diff.c `diff`: `diff -u OLD NEW | tail -n +3`, then "@@ End of diff @@".
    mutating func showChanges(_ fa: File, _ fb: File) throws {
        let old = try Self.contents(fa), new = try Self.contents(fb)
        if let old, let new {
            UnifiedDiff.write(old: old, new: new, into: &out)
        } else {
            Diagnostics.warn("\(String(decoding: fa.path, as: UTF8.self)): larger than \(Self.maxDiffBytes >> 20) MiB; changes not shown")
        }
        out.append("@@ End of diff @@")
        try out.endLine()
    }

    /// Files above this are not read whole to show their changes (the diff is skipped with a
    /// warning), so a guest's huge file cannot exhaust memory.
    static let maxDiffBytes: UInt64 = 256 << 20

    static func contents(_ file: File) throws -> [UInt8]? {
        let handle = try file.tree.filesystem(of: file.node).openFile(file.node.inode)
        guard handle.size <= maxDiffBytes else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(handle.size))
        try handle.stream { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// One record (diff.c `output_file`), after its marker.
    mutating func line(_ marker: String, _ file: File) throws {
        var fields = RecordFields(csv: settings.csv)
        let s = file.stat
        fields.add(string: marker)
        let type = LongListing.modeString(s.mode).prefix(1)
        fields.add(string: type == "?" ? "u" : String(type))
        fields.add(Lister.octal4(UInt16(truncatingIfNeeded: s.permissions)))
        let size = settings.human ? HumanSize.format(s.size) : String(s.size)
        fields.add(settings.csv ? size : size.rightAligned(10))
        if settings.uids {
            fields.add(settings.csv ? String(s.uid) : String(s.uid).rightAligned(4))
            fields.add(settings.csv ? String(s.gid) : String(s.gid).rightAligned(4))
        }
        if settings.timeStyle != .none {
            if settings.atime { fields.add(time(s.atime)) }
            fields.add(time(s.mtime))
            fields.add(time(s.ctime))
        }
        if settings.extraStats {
            fields.add("\(file.device.major):\(file.device.minor)")
            fields.add(String(s.node))
            fields.add(String(s.links))
            fields.add("\(s.rdevMajor):\(s.rdevMinor)")
            fields.add(String(s.blocks512))
        }
        if let checksum = file.checksum { fields.add(string: checksum) }
        fields.add(string: file.path)
        if s.isSymlink, let target = try? file.tree.filesystem(of: file.node).readlink(file.node.inode) {
            if settings.csv { fields.add(string: target) } else { fields.add(Array("-> ".utf8) + target) }
        }
        if settings.xattrs {
            for x in file.xattrs {
                fields.add(string: x.name)
                fields.add(Self.binary(x.value, csv: settings.csv))
            }
        }
        out.append(fields.line)
        try out.endLine()
    }

    func time(_ t: Timestamp) -> String {
        switch settings.timeStyle {
        case .epoch: String(t.seconds).rightAligned(10)
        case .secondsAgo: String(settings.now - t.seconds).rightAligned(8)
        case .daysAgo: String((settings.now - t.seconds) / 86400).rightAligned(3)
        case .calendar, .none: LongListing.strftime("%F %T", t.seconds)
        }
    }

    /// diff.c `output_binary`: printable ASCII as it is, other bytes as \xHH. In CSV a field
    /// with such bytes (or a space, quote, newline or comma) is quoted, and there the escape is
    /// C's "%2x" of a (signed) char: space-padded, and eight digits for bytes from 0x80.
    static func binary(_ value: [UInt8], csv: Bool) -> [UInt8] {
        let printable: (UInt8) -> Bool = { $0 >= 0x20 && $0 < 0x7F }
        func hex(_ v: UInt32, width: Int, pad: Character) -> String {
            let digits = String(v, radix: 16)
            return String(repeating: pad, count: max(0, width - digits.count)) + digits
        }
        let quote = csv && value.contains { !printable($0) || $0 == 0x20 || $0 == 0x22 || $0 == 0x0A || $0 == 0x2C }
        var out: [UInt8] = quote ? [0x22] : []
        for b in value {
            if quote && b == 0x22 {
                out += [0x22, 0x22]
            } else if printable(b) {
                out.append(b)
            } else if quote {
                let extended = b >= 0x80 ? UInt32(bitPattern: Int32(Int8(bitPattern: b))) : UInt32(b)
                out += Array(("\\x" + hex(extended, width: 2, pad: " ")).utf8)
            } else {
                out += Array(("\\x" + hex(UInt32(b), width: 2, pad: "0")).utf8)
            }
        }
        if quote { out.append(0x22) }
        return out
    }
}
