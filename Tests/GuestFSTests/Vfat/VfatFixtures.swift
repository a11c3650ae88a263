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
import SystemPackage
import Testing
import TestSupport

/// FAT images made by the real tools: `mkfs.vfat -F 12/16/32` (or `mkfs.fat -C` for a floppy),
/// filled with `mcopy -s -m` from a host tree with long, short, mixed-case and non-ASCII names,
/// a deep tree, empty files and files of a few MB.
enum VfatFixtures {
    /// mtools refuses images whose geometry it cannot guess without MTOOLS_SKIP_CHECK; times in
    /// UTC, which is how the driver reads them by default.
    static func run(_ command: String) throws -> Shell.Output {
        try Shell.run("export MTOOLS_SKIP_CHECK=1 TZ=UTC LC_ALL=C.UTF-8; " + command)
    }

    @discardableResult
    static func check(_ command: String) throws -> String {
        let r = try run(command)
        guard r.status == 0 else { throw Shell.Failure(command: command, status: r.status, stderr: r.stderr) }
        return r.text
    }

    /// The tools are installed (scripts/install-deps.sh).
    static var haveTools: Bool {
        (try? Shell.run("command -v mkfs.vfat && command -v mcopy && command -v fsck.fat").status) == 0
    }

    /// Names the source tree uses: every kind of name vfat stores differently.
    static let names = [
        "readme.txt", "SHORT.TXT", "MixedCase.Md", "A long file name with spaces.txt", "longfilename1.txt",
        "longfilename2.txt", "a+b,c;d=e[f].dat", "noext", "café-ünïcødé.txt", "日本語のファイル.txt", "x.y.z.tar.gz",
    ]

    /// Writes the source tree under `root`: relative path → contents (directories as nil).
    static func makeTree(at root: String, big: Bool) throws -> [String: [UInt8]?] {
        var tree: [String: [UInt8]?] = [:]
        var rng = UInt64(0x5EED_FA7)
        func random(_ n: Int) -> [UInt8] {
            (0..<n).map { _ in
                rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: rng >> 33)
            }
        }
        let fm = FileManager.default
        func dir(_ p: String) throws {
            try fm.createDirectory(atPath: root + "/" + p, withIntermediateDirectories: true)
            var parts = p.split(separator: "/").map(String.init)
            while !parts.isEmpty { tree[parts.joined(separator: "/")] = .some(nil); parts.removeLast() }
        }
        func file(_ p: String, _ data: [UInt8]) throws {
            try Data(data).write(to: URL(fileURLWithPath: root + "/" + p))
            tree[p] = .some(data)
        }
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (i, name) in names.enumerated() { try file(name, Array("file \(i): \(name)\n".utf8)) }
        try file("empty.bin", [])
        try dir("Dir With A Long Name")
        try file("Dir With A Long Name/inner file.txt", Array("inner\n".utf8))
        try file("Dir With A Long Name/.hidden", Array("dot file\n".utf8))
        try dir("UPPER")
        try file("UPPER/LOWER.TXT", Array("upper\n".utf8))
        try file("UPPER/empty", [])
        let deep = "deep/l1/l2/l3/l4/l5/l6/l7/l8/l9/level ten with a long name"
        try dir(deep)
        try file(deep + "/leaf.txt", Array("deep leaf\n".utf8))
        try dir("many")
        for i in 0 ..< (big ? 150 : 40) { try file("many/entry number \(i).txt", Array("\(i)\n".utf8)) }
        try dir("data")
        try file("data/cluster-ish", random(4096))
        try file("data/r65537", random(65_537))
        if big {
            try file("data/three-mb.bin", random(3 << 20))
            try file("data/one-mb-plus-3.bin", random((1 << 20) + 3))
        }
        return tree
    }

    /// A fresh image at `path`: `kind` is "fat12", "fat16", "fat32" or "floppy" (1440 KiB FAT12,
    /// no partition table).
    static func mkfs(_ kind: String, at path: String, label: String? = "TESTVOL") throws {
        let q = Shell.quote(path)
        let l = label.map { "-n \($0) " } ?? ""
        switch kind {
        case "floppy": try check("rm -f \(q) && mkfs.fat -C \(l)\(q) 1440 >/dev/null")
        case "fat12": try check("truncate -s 8M \(q) && mkfs.vfat -F 12 \(l)\(q) >/dev/null")
        case "fat16": try check("truncate -s 32M \(q) && mkfs.vfat -F 16 \(l)\(q) >/dev/null")
        case "fat32": try check("truncate -s 64M \(q) && mkfs.vfat -F 32 -s 1 \(l)\(q) >/dev/null")
        default: preconditionFailure(kind)
        }
    }

    /// An image of `kind` holding the source tree; returns the image path and the tree.
    static func filled(_ kind: String, in dir: TempDir) throws -> (image: String, tree: [String: [UInt8]?], source: String) {
        let source = dir.file("src")
        let big = kind == "fat16" || kind == "fat32"
        let tree = try makeTree(at: source, big: big)
        let image = dir.file("\(kind).img")
        try mkfs(kind, at: image)
        let items = try FileManager.default.contentsOfDirectory(atPath: source).map { Shell.quote(source + "/" + $0) }
        try check("mcopy -s -m -i \(Shell.quote(image)) \(items.joined(separator: " ")) ::/")
        return (image, tree, source)
    }

    /// Every path below the root of `fs` → contents (directories as nil), read through the driver.
    static func read(_ fs: VfatFilesystem) throws -> [String: [UInt8]?] {
        var out: [String: [UInt8]?] = [:]
        var pending: [(UInt64, String, Int)] = [(fs.rootNode, "", 0)]
        while let (node, path, depth) = pending.popLast() {
            #expect(depth < 64)
            for entry in try fs.entries(node) {
                let name = String(decoding: entry.name, as: UTF8.self)
                let p = path.isEmpty ? name : path + "/" + name
                if entry.type == .directory {
                    out[p] = .some(nil)
                    pending.append((entry.node, p, depth + 1))
                } else {
                    out[p] = .some(try readAll(fs, entry.node))
                }
            }
        }
        return out
    }

    static func readAll(_ fs: VfatFilesystem, _ node: UInt64) throws -> [UInt8] {
        let file = try fs.openFile(node)
        var out = [UInt8](repeating: 0, count: Int(file.size))
        var done = 0
        // In pieces of an odd size, so reads start and end inside clusters.
        while done < out.count {
            let n = try out.withUnsafeMutableBytes { b in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: b[done ..< min(b.count, done + 77_777)]), at: UInt64(done))
            }
            guard n > 0 else { break }
            done += n
        }
        return out
    }

    /// The paths `mdir -/ -a -b` lists (directories with a trailing "/"), without "::/".
    static func mdirPaths(_ image: String) throws -> [String] {
        try check("mdir -/ -a -b -i \(Shell.quote(image)) ::/").split(separator: "\n").compactMap { line in
            guard line.hasPrefix("::/") else { return nil }
            var p = String(line.dropFirst(3))
            if p.hasSuffix("/") { p.removeLast() }
            return p
        }
    }

    /// `fsck.fat -n` exits 0 and reports nothing to fix.
    static func expectClean(_ image: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try run("fsck.fat -n \(Shell.quote(image)) 2>&1")
        #expect(r.status == 0, "fsck.fat -n: \(r.text)", sourceLocation: sourceLocation)
    }

    static func errno(_ body: () throws -> Void) -> Errno? {
        do { try body(); return nil } catch let e as ImageError { return e.errno } catch let e as Errno { return e } catch { return .ioError }
    }
}
