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
import Testing
import TestSupport

/// Walks a `GuestFilesystem` into the shape `HostTree.walk` gives (relative path → facts).
enum ISO9660Walk {
    static func walk(_ fs: any GuestFilesystem) throws -> [[UInt8]: (facts: EntryFacts, node: UInt64)] {
        var result: [[UInt8]: (EntryFacts, UInt64)] = [:]
        var visited = 0
        func visit(_ node: UInt64, _ relative: [UInt8], depth: Int) throws {
            visited += 1
            guard visited < 100_000, depth < 4096 else { Issue.record("walk did not end"); return }
            let a = try fs.attributes(node)
            #expect(a.node == node)
            let isDevice = a.type == .characterDevice || a.type == .blockDevice
            let facts = EntryFacts(mode: a.mode, uid: a.uid, gid: a.gid, size: a.isDirectory ? 0 : a.size,
                                   links: UInt64(a.links), mtimeSeconds: a.mtime.seconds,
                                   symlinkTarget: a.isSymlink ? try fs.readlink(node) : nil,
                                   rdev: isDevice ? glibcDev(a.rdevMajor, a.rdevMinor) : nil)
            result[relative] = (facts, node)
            guard a.isDirectory else { return }
            for entry in try fs.entries(node) {
                #expect(try fs.lookup(node, entry.name) == entry.node, "lookup of \(String(decoding: entry.name, as: UTF8.self))")
                try visit(entry.node, relative.isEmpty ? entry.name : relative + [0x2F] + entry.name, depth: depth + 1)
            }
        }
        try visit(fs.rootNode, [], depth: 0)
        return result
    }

    static func glibcDev(_ major: UInt32, _ minor: UInt32) -> UInt64 {
        let ma = UInt64(major), mi = UInt64(minor)
        return ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
    }

    static func readAll(_ file: any GuestFile) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(file.size))
        var offset = 0
        while offset < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset...]), at: UInt64(offset)) }
            if n == 0 { break }
            offset += n
        }
        return bytes
    }

    static func text(_ path: [UInt8]) -> String { String(decoding: path, as: UTF8.self) }
}

/// Parses `isoinfo -l` listings ("Directory listing of /DIR/" then one line per record:
/// mode, links, uid, gid, size, date, [extent flags], name) into path → (mode string, size).
enum ISOInfoListing {
    static func parse(_ text: String) -> [String: (mode: String, size: UInt64)] {
        var out: [String: (String, UInt64)] = [:]
        var dir = "/"
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Directory listing of ") {
                dir = String(line.dropFirst("Directory listing of ".count))
                continue
            }
            guard let close = line.range(of: "]  ") else { continue }
            var name = String(line[close.upperBound...])
            if name.hasSuffix(" ") { name.removeLast() }
            if let arrow = name.range(of: " -> ") { name = String(name[..<arrow.lowerBound]) }
            if name == "." || name == ".." { continue }
            let fields = line[..<close.lowerBound].split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 5, let size = UInt64(fields[4]) else { continue }
            out[dir + name] = (String(fields[0]), size)
        }
        return out
    }
}
