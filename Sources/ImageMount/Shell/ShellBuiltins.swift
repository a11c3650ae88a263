import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The shell's commands: guestfish's names, arguments and output shapes (guestfs(3) for what
/// each returns, generator/fish.ml for how guestfish prints it: a string and then a newline,
/// lists one item a line, booleans as true/false, hash tables as "key: value" lines).
/// The commands that read are here, those that write in ShellWriteBuiltins.swift, those that
/// move files between the host and the guest in ShellHostBuiltins.swift.
struct ShellBuiltin: Sendable {
    let name: String
    /// Arguments taken: at least `arguments.lowerBound`, at most `upperBound`.
    let arguments: ClosedRange<Int>
    let usage: String
    let summary: String
    let run: @Sendable (ShellContext, [String]) throws -> Void

    static let all: [ShellBuiltin] = reading + writing + host

    static let reading: [ShellBuiltin] = [
        .init(name: "cat", arguments: 1...1, usage: "cat path", summary: "print a file (text: see download for binary files)") { c, a in
            // guestfs_cat returns the content as a string, so within one protocol message
            // (GUESTFS_MESSAGE_MAX, 4 MiB); guestfish prints it and a newline.
            var bytes: [UInt8] = []
            try withFile(c, a[0]) { file in
                guard file.size <= 4 << 20 else { throw ShellError("\(a[0]): file too large for cat (over 4 MiB): use download") }
                try file.stream { bytes.append(contentsOf: $0) }
            }
            try c.print(String(decoding: bytes, as: UTF8.self))
        },
        .init(name: "blockdev-getsize64", arguments: 1...1, usage: "blockdev-getsize64 device", summary: "a device's size in bytes") { c, a in
            try c.print(String(try device(c, a[0]).device.size))
        },
        .init(name: "checksum", arguments: 2...2, usage: "checksum csumtype path", summary: "the checksum of a file (crc, md5, sha1, sha224, sha256, sha384, sha512)") { c, a in
            guard var sum = FileChecksum(type: a[0]) else { throw ShellError("\(a[0]): unknown checksum type") }
            try withFile(c, a[1]) { file in try file.stream { sum.update($0) } }
            try c.print(sum.finish())
        },
        .init(name: "download", arguments: 2...2, usage: "download remotefilename (filename|-)", summary: "copy a file out of the guest to a host file (- for standard output)") { c, a in
            guard a[1] != "-" else {
                try withFile(c, a[0]) { file in try file.stream { try c.write($0) } }
                return
            }
            try withFile(c, a[0]) { file in
                let target = try createHostFile(a[1])
                defer { try? target.close() }
                do { try file.stream { _ = try target.writeAll($0) } } catch let e as Errno {
                    throw ShellError("\(a[1]): \(e.description)")
                }
            }
        },
        .init(name: "df", arguments: 0...0, usage: "df", summary: "what df prints for the mounted filesystems (in the appliance's /sysroot)") { c, _ in
            // guestfs_df returns df's text, newline included; guestfish prints it and a newline.
            try c.print(ShellDf.table(c.mounted(), human: false))
        },
        .init(name: "df-h", arguments: 0...0, usage: "df-h", summary: "what df -h prints for the mounted filesystems") { c, _ in
            try c.print(ShellDf.table(c.mounted(), human: true))
        },
        .init(name: "du", arguments: 1...1, usage: "du path", summary: "the space used below a path, in KiB (du -s)") { c, a in
            let tree = try c.mounted()
            let top = try resolve(tree, a[0])
            // du counts each inode once (hard links), in 1 KiB units of allocated blocks; the
            // same set stops a damaged filesystem's directory loops.
            var seen = Set<GuestNode>()
            var blocks512: UInt64 = 0
            func walk(_ node: GuestNode, depth: Int) throws {
                guard seen.insert(node).inserted else { return }
                let info = try tree.attributes(node)
                blocks512 = blocks512.saturatingAdd(info.blocks512)
                guard info.isDirectory, depth < DirectoryWalkPath.maxDepth else { return }
                for entry in try tree.entries(node, rejected: { _ in }) where entry.name != [0x2E] && entry.name != [0x2E, 0x2E] {
                    try walk(entry.node, depth: depth + 1)
                }
            }
            try walk(top, depth: 0)
            try c.print(String((blocks512 + 1) / 2))
        },
        .init(name: "echo", arguments: 0...Int.max, usage: "echo [params...]", summary: "print the arguments") { c, a in
            try c.print(a.joined(separator: " "))
        },
        .init(name: "exists", arguments: 1...1, usage: "exists path", summary: "true if the path exists (symlinks followed)") { c, a in
            let tree = try c.mounted()
            try c.printBool((try? tree.resolve(absolute(a[0]))) != nil)
        },
        .init(name: "getxattr", arguments: 2...2, usage: "getxattr path name", summary: "one extended attribute's value, as raw bytes (symlinks followed)") { c, a in
            let tree = try c.mounted()
            let node = try resolve(tree, a[0])
            guard let value = try tree.filesystem(of: node).xattr(node.inode, name: a[1]) else {
                throw ShellError("\(a[0]): No data available")
            }
            try value.withUnsafeBytes { try c.write($0) }
        },
        .init(name: "getxattrs", arguments: 1...1, usage: "getxattrs path", summary: "the extended attributes (symlinks followed)") { c, a in
            try printXattrs(c, a[0], follow: true)
        },
        .init(name: "filesize", arguments: 1...1, usage: "filesize file", summary: "the size of a file in bytes") { c, a in
            let tree = try c.mounted()
            let node = try resolve(tree, a[0])
            try c.print(String(try tree.attributes(node).size))
        },
        .init(name: "find", arguments: 1...1, usage: "find directory", summary: "every name below a directory, relative to it, sorted") { c, a in
            try listing(c, a[0]) { try $0.find($1, into: &$2) }
        },
        .init(name: "find0", arguments: 2...2, usage: "find0 directory (files|-)", summary: "as find, each name ended by a NUL, into a host file (- for standard output)") { c, a in
            guard a[1] != "-" else {
                try listing(c, a[0]) { try $0.find($1, into: &$2, terminator: 0) }
                return
            }
            let tree = try c.mounted()
            var names = OutputBuffer(flushAt: Int.max)
            do { try GuestListing(tree: tree, now: 0).find(try absolute(a[0]), into: &names, terminator: 0) } catch {
                throw ShellError(ShellError.describe(error, path: a[0]))
            }
            let target = try createHostFile(a[1])
            defer { try? target.close() }
            do { _ = try names.bytes.withUnsafeBytes { try target.writeAll($0) } } catch let e as Errno {
                throw ShellError("\(a[1]): \(e.description)")
            }
        },
        .init(name: "head", arguments: 1...1, usage: "head path", summary: "the first 10 lines of a file") { c, a in
            try c.printList(lines(c, a[0], count: 10, fromEnd: false))
        },
        .init(name: "head-n", arguments: 2...2, usage: "head-n nrlines path", summary: "the first N lines (N < 0: all but the last -N)") { c, a in
            guard let n = Int(a[0]) else { throw ShellError("\(a[0]): expected a number of lines") }
            try c.printList(lines(c, a[1], count: n, fromEnd: false))
        },
        .init(name: "help", arguments: 0...1, usage: "help [command]", summary: "list the commands, or show one's usage") { c, a in
            if let name = a.first {
                guard let command = byName[name] else { throw ShellError("\(name): command not known, use 'help' to list them") }
                try c.print("\(command.usage)\n\n  \(command.summary)")
            } else {
                for command in all.sorted(by: { $0.name < $1.name }) { try c.print(command.name.leftAligned(30) + " " + command.summary) }
            }
        },
        .init(name: "inspect-get-arch", arguments: 1...1, usage: "inspect-get-arch root", summary: "the OS's architecture") { c, a in
            try c.print(try c.system(a[0]).architecture ?? "unknown")
        },
        .init(name: "inspect-get-distro", arguments: 1...1, usage: "inspect-get-distro root", summary: "the distribution") { c, a in
            try c.print(try c.system(a[0]).distro ?? "unknown")
        },
        .init(name: "inspect-get-filesystems", arguments: 1...1, usage: "inspect-get-filesystems root", summary: "the filesystems the OS uses") { c, a in
            let os = try c.system(a[0])
            var devices = [os.root]
            for entry in os.mountpoints where !devices.contains(entry.device) { devices.append(entry.device) }
            try c.printList(devices)
        },
        .init(name: "inspect-get-hostname", arguments: 1...1, usage: "inspect-get-hostname root", summary: "the OS's hostname") { c, a in
            try c.print(try c.system(a[0]).hostname ?? "unknown")
        },
        .init(name: "inspect-get-major-version", arguments: 1...1, usage: "inspect-get-major-version root", summary: "the major version") { c, a in
            try c.print(String(try c.system(a[0]).majorVersion))
        },
        .init(name: "inspect-get-minor-version", arguments: 1...1, usage: "inspect-get-minor-version root", summary: "the minor version") { c, a in
            try c.print(String(try c.system(a[0]).minorVersion))
        },
        .init(name: "inspect-get-mountpoints", arguments: 1...1, usage: "inspect-get-mountpoints root", summary: "mountpoint: device pairs from the OS's fstab") { c, a in
            // guestfs_inspect_get_mountpoints: sorted by mountpoint length, so / comes first.
            let pairs = try c.system(a[0]).mountpoints.sorted { ($0.mountpoint.count, $0.mountpoint) < ($1.mountpoint.count, $1.mountpoint) }
            try c.printHash(pairs.map { ($0.mountpoint, $0.device) })
        },
        .init(name: "inspect-get-package-format", arguments: 1...1, usage: "inspect-get-package-format root", summary: "rpm, deb, ...") { c, a in
            try c.print(try c.system(a[0]).packageFormat ?? "unknown")
        },
        .init(name: "inspect-get-package-management", arguments: 1...1, usage: "inspect-get-package-management root", summary: "dnf, apt, ...") { c, a in
            try c.print(try c.system(a[0]).packageManagement ?? "unknown")
        },
        .init(name: "inspect-get-product-name", arguments: 1...1, usage: "inspect-get-product-name root", summary: "the product name") { c, a in
            try c.print(try c.system(a[0]).productName ?? "unknown")
        },
        .init(name: "inspect-get-roots", arguments: 0...0, usage: "inspect-get-roots", summary: "the roots inspection found") { c, _ in
            try c.printList(c.operatingSystems.map(\.root))
        },
        .init(name: "inspect-get-type", arguments: 1...1, usage: "inspect-get-type root", summary: "linux, windows, ...") { c, a in
            try c.print(try c.system(a[0]).type)
        },
        .init(name: "inspect-os", arguments: 0...0, usage: "inspect-os", summary: "inspect the disks: the roots of the operating systems found") { c, _ in
            try c.printList(c.operatingSystems.map(\.root))
        },
        .init(name: "is-blockdev", arguments: 1...1, usage: "is-blockdev path", summary: "true if the path is a block device") { c, a in
            try c.printBool(attributes(c, a[0])?.type == .blockDevice)
        },
        .init(name: "is-chardev", arguments: 1...1, usage: "is-chardev path", summary: "true if the path is a character device") { c, a in
            try c.printBool(attributes(c, a[0])?.type == .characterDevice)
        },
        .init(name: "is-dir", arguments: 1...1, usage: "is-dir path", summary: "true if the path is a directory (the last symlink not followed)") { c, a in
            try c.printBool(attributes(c, a[0])?.isDirectory == true)
        },
        .init(name: "is-fifo", arguments: 1...1, usage: "is-fifo path", summary: "true if the path is a FIFO") { c, a in
            try c.printBool(attributes(c, a[0])?.type == .fifo)
        },
        .init(name: "is-file", arguments: 1...1, usage: "is-file path", summary: "true if the path is a regular file (the last symlink not followed)") { c, a in
            try c.printBool(attributes(c, a[0])?.isRegular == true)
        },
        .init(name: "is-socket", arguments: 1...1, usage: "is-socket path", summary: "true if the path is a socket") { c, a in
            try c.printBool(attributes(c, a[0])?.type == .socket)
        },
        .init(name: "is-symlink", arguments: 1...1, usage: "is-symlink path", summary: "true if the path is a symbolic link") { c, a in
            try c.printBool(attributes(c, a[0])?.isSymlink == true)
        },
        .init(name: "list-devices", arguments: 0...0, usage: "list-devices", summary: "the disks") { c, _ in
            try c.printList(c.guest.drives.map(\.name))
        },
        .init(name: "list-filesystems", arguments: 0...0, usage: "list-filesystems", summary: "device: type of every filesystem") { c, _ in
            try c.printHash(FilesystemsCommand.filesystems(of: c.guest).map { ($0.device.name, $0.type) })
        },
        .init(name: "list-partitions", arguments: 0...0, usage: "list-partitions", summary: "the partitions") { c, _ in
            try c.printList(c.guest.devices.filter { $0.kind == .partition }.map(\.name))
        },
        .init(name: "lgetxattrs", arguments: 1...1, usage: "lgetxattrs path", summary: "the extended attributes (the last symlink not followed)") { c, a in
            try printXattrs(c, a[0], follow: false)
        },
        .init(name: "ll", arguments: 1...1, usage: "ll directory", summary: "a long listing, as ls -la prints it") { c, a in
            try listing(c, a[0]) { try $0.longListing($1, into: &$2) }
        },
        .init(name: "lvs", arguments: 0...0, usage: "lvs", summary: "the LVM logical volumes, /dev/VG/LV") { c, _ in
            // lvm lvs's order: by volume group, then volume name.
            try c.printList(c.guest.devices.filter { $0.kind == .logicalVolume }.map(\.name).sorted())
        },
        .init(name: "ls", arguments: 1...1, usage: "ls directory", summary: "the names in a directory, sorted (not . and ..)") { c, a in
            try listing(c, a[0]) { try $0.names($1, into: &$2) }
        },
        .init(name: "lstatns", arguments: 1...1, usage: "lstatns path", summary: "a file's status (the last symlink not followed)") { c, a in
            try printStat(c, a[0], follow: false)
        },
        .init(name: "mount", arguments: 2...2, usage: "mount mountable mountpoint", summary: "mount a filesystem (writable when the shell was given --rw)") { c, a in
            try c.mount(a[0], on: a[1])
        },
        .init(name: "mount-ro", arguments: 2...2, usage: "mount-ro mountable mountpoint", summary: "mount a filesystem read-only") { c, a in
            try c.mount(a[0], on: a[1], readOnly: true)
        },
        .init(name: "mountpoints", arguments: 0...0, usage: "mountpoints", summary: "device: mountpoint of each mount") { c, _ in
            try c.printHash(c.entries.map { ($0.device.name, $0.mountpoint) })
        },
        .init(name: "mounts", arguments: 0...0, usage: "mounts", summary: "the mounted devices") { c, _ in
            try c.printList(c.entries.map(\.device.name))
        },
        .init(name: "pvs", arguments: 0...0, usage: "pvs", summary: "the LVM physical volumes") { c, _ in
            try c.printList(c.guest.devices.filter { $0.content.type == "LVM2_member" }.map(\.name).sorted())
        },
        .init(name: "readlink", arguments: 1...1, usage: "readlink path", summary: "a symbolic link's target") { c, a in
            let tree = try c.mounted()
            let node = try resolve(tree, a[0], follow: false)
            guard try tree.attributes(node).isSymlink else { throw ShellError("\(a[0]): Invalid argument") }
            try c.print(String(decoding: try tree.filesystem(of: node).readlink(node.inode), as: UTF8.self))
        },
        .init(name: "run", arguments: 0...0, usage: "run", summary: "accepted for guestfish scripts (nothing to launch here)") { _, _ in },
        .init(name: "launch", arguments: 0...0, usage: "launch", summary: "the same as run") { _, _ in },
        .init(name: "stat", arguments: 1...1, usage: "stat path", summary: "a file's status in guestfs_stat's older struct, whole seconds (symlinks followed)") { c, a in
            try printOldStat(c, a[0], follow: true)
        },
        .init(name: "lstat", arguments: 1...1, usage: "lstat path", summary: "as stat, the last symlink not followed") { c, a in
            try printOldStat(c, a[0], follow: false)
        },
        .init(name: "statns", arguments: 1...1, usage: "statns path", summary: "a file's status (symlinks followed)") { c, a in
            try printStat(c, a[0], follow: true)
        },
        .init(name: "statvfs", arguments: 1...1, usage: "statvfs path", summary: "the filesystem's sizes (statvfs(3))") { c, a in
            let tree = try c.mounted()
            let node = try resolve(tree, a[0])
            let u = try tree.filesystem(of: node).usage()
            try c.printHash([
                ("bsize", String(u.blockSize)), ("frsize", String(u.blockSize)), ("blocks", String(u.totalBlocks)),
                ("bfree", String(u.freeBlocks)), ("bavail", String(u.availableBlocks)), ("files", String(u.totalInodes)),
                ("ffree", String(u.freeInodes)), ("favail", String(u.freeInodes)), ("fsid", "0"),
                // ST_RDONLY for a read-only mount.
                ("flag", tree.isReadOnly(node) ? "1" : "0"), ("namemax", String(u.maxNameLength)),
            ])
        },
        .init(name: "tail", arguments: 1...1, usage: "tail path", summary: "the last 10 lines of a file") { c, a in
            try c.printList(lines(c, a[0], count: 10, fromEnd: true))
        },
        .init(name: "tail-n", arguments: 2...2, usage: "tail-n nrlines path", summary: "the last N lines (N < 0: from line -N on)") { c, a in
            guard let n = Int(a[0]) else { throw ShellError("\(a[0]): expected a number of lines") }
            try c.printList(lines(c, a[1], count: n, fromEnd: true))
        },
        .init(name: "umount", arguments: 1...1, usage: "umount pathordevice", summary: "unmount a filesystem") { c, a in
            try c.unmount(a[0])
        },
        .init(name: "umount-all", arguments: 0...0, usage: "umount-all", summary: "unmount every filesystem") { c, _ in
            try c.unmountAll()
        },
        .init(name: "vfs-label", arguments: 1...1, usage: "vfs-label mountable", summary: "the filesystem's label") { c, a in
            try c.print(try device(c, a[0]).content.label ?? "")
        },
        .init(name: "vfs-type", arguments: 1...1, usage: "vfs-type mountable", summary: "the filesystem's type") { c, a in
            try c.print(try device(c, a[0]).content.type ?? "")
        },
        .init(name: "vfs-uuid", arguments: 1...1, usage: "vfs-uuid mountable", summary: "the filesystem's UUID") { c, a in
            try c.print(try device(c, a[0]).content.uuid ?? "")
        },
        .init(name: "vgs", arguments: 0...0, usage: "vgs", summary: "the LVM volume groups") { c, _ in
            var names: [String] = []
            for lv in c.guest.devices where lv.kind == .logicalVolume {
                if let vg = lv.parent, !names.contains(vg) { names.append(vg) }
            }
            try c.printList(names.sorted())
        },
    ]

    static let byName: [String: ShellBuiltin] = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

    // MARK: Helpers

    /// guestfish's daemon refuses relative paths (daemon.h, ABS_PATH).
    static func absolute(_ path: String) throws -> String {
        guard path.hasPrefix("/") else { throw ShellError("\(path): path must start with a / character") }
        return path
    }

    static func resolve(_ tree: MountTree, _ path: String, follow: Bool = true) throws -> GuestNode {
        do { return try tree.resolve(absolute(path), followFinal: follow) } catch {
            throw ShellError(ShellError.describe(error, path: path))
        }
    }

    /// One of GuestListing's listings of `path`, its errors in the daemon's words.
    static func listing(_ c: ShellContext, _ path: String,
                        _ body: (GuestListing, String, inout OutputBuffer) throws -> Void) throws {
        let tree = try c.mounted()
        let listing = GuestListing(tree: tree, now: Int64(time(nil)))
        let absolutePath = try absolute(path)
        do { try c.withOutput { try body(listing, absolutePath, &$0) } } catch {
            throw ShellError(ShellError.describe(error, path: path))
        }
    }

    /// The attributes of `path` without following its last symlink, or nil when it does not exist.
    static func attributes(_ c: ShellContext, _ path: String) throws -> NodeAttributes? {
        let tree = try c.mounted()
        guard let node = try? tree.resolve(absolute(path), followFinal: false) else { return nil }
        return try tree.attributes(node)
    }

    static func withFile(_ c: ShellContext, _ path: String, _ body: (any GuestFile) throws -> Void) throws {
        let tree = try c.mounted()
        let node = try resolve(tree, path)
        let info = try tree.attributes(node)
        if info.isDirectory { throw ShellError("\(path): Is a directory") }
        guard info.isRegular else { throw ShellError("\(path): not a regular file") }
        try body(tree.filesystem(of: node).openFile(node.inode))
    }

    /// Lines of a text file as head/tail give them (guestfs_head_n, guestfs_tail_n).
    static func lines(_ c: ShellContext, _ path: String, count: Int, fromEnd: Bool) throws -> [String] {
        var bytes: [UInt8] = []
        try withFile(c, path) { file in
            // Enough of the file and no more: head -n N reads until its N lines, the rest needs
            // the whole file, which is refused past 64 MiB (memory stays bounded).
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { chunk.deallocate() }
            var offset: UInt64 = 0
            var newlines = 0
            while offset < file.size {
                if !fromEnd && count >= 0 && newlines >= count { break }
                guard bytes.count < 64 << 20 else { throw ShellError("\(path): file too large (over 64 MiB) for this command") }
                let n = try file.read(into: chunk, at: offset)
                if n == 0 { break }
                let piece = UnsafeRawBufferPointer(rebasing: chunk[..<n])
                bytes.append(contentsOf: piece)
                newlines += piece.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                offset += UInt64(n)
            }
        }
        var all = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if bytes.last == 0x0A { all.removeLast() }
        if fromEnd {
            // tail -n N; with N < 0, tail -n +(-N): from line -N on.
            return count >= 0 ? Array(all.suffix(count)) : Array(all.dropFirst(max(0, -count - 1)))
        }
        // head -n N; with N < 0, all but the last -N lines.
        return count >= 0 ? Array(all.prefix(count)) : Array(all.dropLast(-count))
    }

    static func device(_ c: ShellContext, _ name: String) throws -> GuestDevice {
        do { return try c.guest.device(named: name) } catch { throw ShellError(ShellError.describe(error)) }
    }

    /// guestfs_getxattrs's struct list as guestfish prints one: each struct as `[N] = {`, its
    /// fields indented, `}`; the value's unprintable bytes as \xNN.
    static func printXattrs(_ c: ShellContext, _ path: String, follow: Bool) throws {
        let tree = try c.mounted()
        let node = try resolve(tree, path, follow: follow)
        for (index, x) in try tree.filesystem(of: node).xattrs(node.inode).enumerated() {
            var value = ""
            for b in x.value {
                if b >= 0x20 && b < 0x7F { value.append(Character(Unicode.Scalar(b))) } else {
                    value += "\\x" + (b < 0x10 ? "0" : "") + String(b, radix: 16)
                }
            }
            try c.print("[\(index)] = {")
            try c.print("  attrname: \(x.name)")
            try c.print("  attrval: \(value)")
            try c.print("}")
        }
    }

    /// guestfs_stat's struct (deprecated by statns, still in scripts): the same figures, times
    /// in whole seconds.
    static func printOldStat(_ c: ShellContext, _ path: String, follow: Bool) throws {
        let tree = try c.mounted()
        let node = try resolve(tree, path, follow: follow)
        let a = try tree.attributes(node)
        try c.printHash([
            ("dev", "0"), ("ino", String(a.node)), ("mode", String(a.mode)), ("nlink", String(a.links)),
            ("uid", String(a.uid)), ("gid", String(a.gid)), ("rdev", String(rdev(a))), ("size", String(a.size)),
            ("blksize", "4096"), ("blocks", String(a.blocks512)), ("atime", String(a.atime.seconds)),
            ("mtime", String(a.mtime.seconds)), ("ctime", String(a.ctime.seconds)),
        ])
    }

    /// glibc's makedev (sys/sysmacros.h): the dev_t the daemon's lstat would give.
    static func rdev(_ a: NodeAttributes) -> UInt64 {
        let device = a.type == .characterDevice || a.type == .blockDevice
        let major = device ? UInt64(a.rdevMajor) : 0, minor = device ? UInt64(a.rdevMinor) : 0
        return (major & 0xFFF) << 8 | (major & ~0xFFF) << 32 | (minor & 0xFF) | (minor & ~0xFF) << 12
    }

    /// guestfs_statns's struct, printed field by field as guestfish prints a struct.
    static func printStat(_ c: ShellContext, _ path: String, follow: Bool) throws {
        let tree = try c.mounted()
        let node = try resolve(tree, path, follow: follow)
        let a = try tree.attributes(node)
        let deviceNumber = Self.rdev(a)
        try c.printHash([
            ("st_dev", "0"), ("st_ino", String(a.node)), ("st_mode", String(a.mode)),
            ("st_nlink", String(a.links)), ("st_uid", String(a.uid)), ("st_gid", String(a.gid)),
            ("st_rdev", String(deviceNumber)), ("st_size", String(a.size)), ("st_blksize", "4096"),
            ("st_blocks", String(a.blocks512)),
            ("st_atime_sec", String(a.atime.seconds)), ("st_atime_nsec", String(a.atime.nanoseconds)),
            ("st_mtime_sec", String(a.mtime.seconds)), ("st_mtime_nsec", String(a.mtime.nanoseconds)),
            ("st_ctime_sec", String(a.ctime.seconds)), ("st_ctime_nsec", String(a.ctime.nanoseconds)),
            ("st_spare1", "0"), ("st_spare2", "0"), ("st_spare3", "0"),
            ("st_spare4", "0"), ("st_spare5", "0"), ("st_spare6", "0"),
        ])
    }
}
