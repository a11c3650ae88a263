import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing
import TestSupport

/// v4 filesystems (`-m crc=0`, with and without ftype), which this kernel refuses to mount:
/// built with a `mkfs.xfs -p` prototype from a source tree, and read back against that tree
/// (names, types, modes, owners, sizes, targets, device numbers, bytes) and `xfs_db -r`
/// (sizes, block counts, link counts, superblock counters).
@Suite(.serialized) struct XFSV4Tests {
    final class Fixture: @unchecked Sendable {
        let dir: TempDir
        var source: String { dir.file("src") }

        init() throws {
            dir = try TempDir("imagemount-xfs-v4")
            try Shell.check("""
                set -e; cd \(Shell.quote(dir.path)); mkdir -p src/dir/many src/empty; cd src
                printf 'hello\\n' > hello.txt
                head -c 2000000 /dev/urandom > dir/random.bin
                : > empty.txt
                i=0; while [ $i -lt 200 ]; do echo "entry $i" > "dir/many/file-with-a-longer-name-$i"; i=$((i + 1)); done
                chmod 0640 hello.txt; chmod 4755 dir/random.bin; chmod 2750 empty
                chown 1234:5678 hello.txt
                """)
        }

        /// The prototype file (mkfs.xfs(8) "-p"): the source tree, plus symlinks and device
        /// nodes the prototype describes itself.
        func prototype() -> String {
            var lines = ["/dev/null", "0 0", "d--755 0 0"]
            func modeString(_ facts: EntryFacts, type: Character) -> String {
                let suid: Character = facts.mode & 0o4000 != 0 ? "u" : "-"
                let sgid: Character = facts.mode & 0o2000 != 0 ? "g" : "-"
                let perm = String(facts.mode & 0o777, radix: 8)
                return "\(type)\(suid)\(sgid)\(String(repeating: "0", count: max(0, 3 - perm.count)))\(perm)"
            }
            func visit(_ path: String, depth: Int) {
                let indent = String(repeating: " ", count: depth)
                for name in HostTree.list(Array(path.utf8)).map({ String(decoding: $0, as: UTF8.self) }).sorted() {
                    let full = path + "/" + name
                    guard let facts = HostTree.lstatFacts(Array(full.utf8)) else { continue }
                    if facts.mode & 0o170000 == 0o040000 {
                        lines.append("\(indent)\(name) \(modeString(facts, type: "d")) \(facts.uid) \(facts.gid)")
                        visit(full, depth: depth + 1)
                        lines.append("\(indent)$")
                    } else {
                        lines.append("\(indent)\(name) \(modeString(facts, type: "-")) \(facts.uid) \(facts.gid) \(full)")
                    }
                }
            }
            visit(source, depth: 1)
            lines.append(" rel-link l--777 42 43 hello.txt")
            lines.append(" long-link l--777 0 0 \(String(repeating: "d", count: 700))")
            lines.append(" null c--666 0 0 1 3")
            lines.append(" bigdev b--660 0 6 259 70000")
            lines.append(" fifo p--644 0 0")
            lines.append("$")
            return lines.joined(separator: "\n") + "\n"
        }

        func image(_ name: String, options: String) throws -> String {
            let proto = dir.file(name + ".proto"), image = dir.file(name + ".img")
            try prototype().write(toFile: proto, atomically: true, encoding: .utf8)
            try Shell.check("truncate -s 400M \(Shell.quote(image)) && mkfs.xfs -q -f \(options) -p \(Shell.quote(proto)) \(Shell.quote(image)) 2>/dev/null")
            return image
        }
    }

    static let fixture = Result { try Fixture() }

    @Test(arguments: ["-m crc=0 -n ftype=0", "-m crc=0 -n ftype=1", "-m crc=0 -b size=1024 -n ftype=0"])
    func treeMatchesTheSourceAndXfsDb(options: String) throws {
        let f = try Self.fixture.get()
        let image = try f.image("v4-\(options.filter { $0.isLetter || $0.isNumber })", options: options)
        let fs = try XFSFilesystem(device: RawImage(path: image, writable: false))
        #expect(!fs.geometry.isV5)
        #expect(fs.geometry.hasFtype == options.contains("ftype=1"))
        // The walk: path → attributes, through entries and lookup.
        var guest: [String: NodeAttributes] = [:]
        func visit(_ dir: UInt64, _ path: String) throws {
            for e in try fs.entries(dir) {
                let name = String(decoding: e.name, as: UTF8.self)
                let full = path.isEmpty ? name : path + "/" + name
                let a = try fs.attributes(e.node)
                #expect(e.type == a.type, "\(full)")
                #expect(try fs.lookup(dir, e.name) == e.node)
                guest[full] = a
                if a.isDirectory { try visit(e.node, full) }
            }
        }
        try visit(fs.rootNode, "")
        let host = HostTree.walk(f.source)
        let extra = ["rel-link", "long-link", "null", "bigdev", "fifo"]
        #expect(Set(guest.keys) == Set(host.keys.filter { !$0.isEmpty }.map { String(decoding: $0, as: UTF8.self) } + extra))
        for (path, want) in host where !path.isEmpty {
            let p = String(decoding: path, as: UTF8.self)
            guard let a = guest[p] else { continue }
            #expect(a.mode == want.mode && a.uid == want.uid && a.gid == want.gid, "\(p)")
            if !a.isDirectory { #expect(a.size == want.size, "\(p)") }
            if a.isRegular {
                let bytes = try XFSFixtures.readAll(fs.openFile(a.node))
                let same = bytes == [UInt8](try Data(contentsOf: URL(fileURLWithPath: f.source + "/" + p)))
                #expect(same, "\(p) bytes")
            }
        }
        #expect(try fs.readlink(#require(guest["rel-link"]).node) == Array("hello.txt".utf8))
        #expect(try fs.readlink(#require(guest["long-link"]).node) == Array(String(repeating: "d", count: 700).utf8))
        #expect(guest["rel-link"]?.uid == 42 && guest["rel-link"]?.gid == 43)
        #expect(guest["null"].map { ($0.type, $0.rdevMajor, $0.rdevMinor) } ?? (.unknown, 0, 0) == (.characterDevice, 1, 3))
        #expect(guest["bigdev"].map { ($0.type, $0.rdevMajor, $0.rdevMinor) } ?? (.unknown, 0, 0) == (.blockDevice, 259, 70000))
        #expect(guest["fifo"]?.type == .fifo)

        // xfs_db's view of each file's inode and of the superblock counters.
        for p in ["hello.txt", "dir/random.bin", "long-link", "dir/many", "empty"] {
            let a = try #require(guest[p])
            let text = try Shell.check("xfs_db -r -c 'inode \(a.node)' -c 'p core.size core.nblocks core.nlinkv2 core.mode' \(Shell.quote(image))")
            var db: [String: UInt64] = [:]
            for line in text.split(separator: "\n") {
                let kv = line.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2 { db[kv[0]] = kv[1].hasPrefix("0") && kv[1].count > 1 ? UInt64(kv[1], radix: 8) : UInt64(kv[1]) }
            }
            #expect(db["core.size"] == a.size, "\(p) size")
            #expect(db["core.nblocks"].map { $0 * UInt64(fs.geometry.blockSize / 512) } == a.blocks512, "\(p) blocks")
            #expect(db["core.nlinkv2"] == UInt64(a.links), "\(p) nlink")
            #expect(db["core.mode"] == UInt64(a.mode), "\(p) mode \(text)")
        }
        let sb = try Shell.check("xfs_db -r -c 'sb 0' -c 'p icount ifree fdblocks' \(Shell.quote(image))")
        let u = try fs.usage()
        let counters = sb.split(separator: "\n").compactMap { UInt64($0.split(separator: "=").last?.trimmingCharacters(in: .whitespaces) ?? "") }
        #expect(counters.count == 3)
        if counters.count == 3 {
            #expect(u.freeBlocks == counters[2] - UInt64(fs.geometry.agCount) * 8)
            #expect(u.totalInodes - u.freeInodes == counters[0] - counters[1])
        }
    }

    /// A second opinion from libfsxfs (Debian's libfsxfs-utils, a 2020 snapshot, which reads v4
    /// without the kernel): `fsxfsinfo -H` lists the same paths as our walk, and `fsxfsinfo -F`
    /// gives each regular file, directory and symlink the inode number, size, owner and mode
    /// we give it.
    @Test(arguments: ["-m crc=0 -n ftype=0", "-m crc=0 -n ftype=1"])
    func listingMatchesFsxfsinfo(options: String) throws {
        let f = try Self.fixture.get()
        let image = try f.image("v4-fsxfs-\(options.filter { $0.isLetter || $0.isNumber })", options: options)
        let fs = try XFSFilesystem(device: RawImage(path: image, writable: false))
        var ours: [String: NodeAttributes] = [:]
        func visit(_ dir: UInt64, _ path: String, depth: Int) throws {
            guard depth < 16 else { return }
            for e in try fs.entries(dir) {
                let full = path + "/" + String(decoding: e.name, as: UTF8.self)
                let a = try fs.attributes(e.node)
                ours[full] = a
                if a.isDirectory { try visit(e.node, full, depth: depth + 1) }
            }
        }
        try visit(fs.rootNode, "", depth: 0)
        let hierarchy = try Shell.check("fsxfsinfo -H \(Shell.quote(image)) 2>/dev/null")
        // The lines after the "File system hierarchy:" heading, one path each, "/" first.
        let lines = hierarchy.split(separator: "\n").map(String.init)
        let start = try #require(lines.firstIndex { $0.hasPrefix("File system hierarchy") }, "\(hierarchy)")
        let theirs = lines[(start + 1)...].filter { $0.hasPrefix("/") }
        #expect(theirs.first == "/")
        #expect(Set(theirs.dropFirst()) == Set(ours.keys))
        #expect(theirs.count - 1 == ours.count, "no path listed twice")
        for path in ["/hello.txt", "/dir", "/dir/random.bin", "/dir/many", "/dir/many/file-with-a-longer-name-7", "/empty",
                     "/empty.txt", "/rel-link"] {
            let a = try #require(ours[path], "\(path)")
            let text = try Shell.check("fsxfsinfo -F \(Shell.quote(path)) \(Shell.quote(image)) 2>/dev/null")
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2 { fields[kv[0]] = kv[1] }
            }
            #expect(fields["Inode number"] == String(a.node), "\(path): \(text)")
            if !a.isDirectory { #expect(fields["Size"] == String(a.size), "\(path) size: \(text)") }
            #expect(fields["Owner identifier"] == String(a.uid) && fields["Group identifier"] == String(a.gid), "\(path) owner: \(text)")
            // "-rw-r--r-- (0100644)": the octal mode in parentheses.
            let mode = fields["File mode"].flatMap { $0.split(separator: "(").last }.flatMap { UInt32($0.dropLast(), radix: 8) }
            #expect(mode == UInt32(a.mode), "\(path) mode: \(text)")
        }
    }
}
