import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What tests compare of one file: the host's `lstat` or the guest's inode, in one shape.
public struct EntryFacts: Equatable, CustomStringConvertible, Sendable {
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var links: UInt64
    public var mtimeSeconds: Int64
    public var symlinkTarget: [UInt8]?
    public var rdev: UInt64?

    public init(mode: UInt32, uid: UInt32, gid: UInt32, size: UInt64, links: UInt64, mtimeSeconds: Int64,
                symlinkTarget: [UInt8]?, rdev: UInt64?) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.size = size; self.links = links
        self.mtimeSeconds = mtimeSeconds; self.symlinkTarget = symlinkTarget; self.rdev = rdev
    }

    public var description: String {
        "mode=\(String(mode, radix: 8)) uid=\(uid) gid=\(gid) size=\(size) links=\(links) mtime=\(mtimeSeconds)"
            + (symlinkTarget.map { " -> \(String(decoding: $0, as: UTF8.self))" } ?? "") + (rdev.map { " rdev=\($0)" } ?? "")
    }
}

/// Walks a host directory with opendir/readdir/lstat, names as bytes.
public enum HostTree {
    /// Relative path (bytes, '/'-joined) → facts, for every entry below `root` (root itself as []).
    public static func walk(_ root: String) -> [[UInt8]: EntryFacts] {
        var result: [[UInt8]: EntryFacts] = [:]
        func visit(_ relative: [UInt8]) {
            let full = Array(root.utf8) + (relative.isEmpty ? [] : [0x2F] + relative)
            guard let facts = lstatFacts(full) else { return }
            result[relative] = facts
            guard facts.mode & 0o170000 == 0o040000 else { return }
            for name in list(full) { visit(relative.isEmpty ? name : relative + [0x2F] + name) }
        }
        visit([])
        return result
    }

    public static func list(_ path: [UInt8]) -> [[UInt8]] {
        let cpath = path.map { CChar(bitPattern: $0) } + [0]
        guard let dir = opendir(cpath) else { return [] }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return names
    }

    public static func lstatFacts(_ path: [UInt8]) -> EntryFacts? {
        let cpath = path.map { CChar(bitPattern: $0) } + [0]
        var st = stat()
        guard lstat(cpath, &st) == 0 else { return nil }
        var target: [UInt8]? = nil
        if st.st_mode & S_IFMT == S_IFLNK {
            var buffer = [CChar](repeating: 0, count: 4097)
            let n = readlink(cpath, &buffer, 4096)
            target = n >= 0 ? buffer.prefix(n).map { UInt8(bitPattern: $0) } : nil
        }
        let isDevice = st.st_mode & S_IFMT == S_IFCHR || st.st_mode & S_IFMT == S_IFBLK
        return EntryFacts(mode: UInt32(st.st_mode), uid: st.st_uid, gid: st.st_gid,
                          size: st.st_mode & S_IFMT == S_IFDIR ? 0 : UInt64(st.st_size), links: UInt64(st.st_nlink),
                          mtimeSeconds: Int64(st.st_mtim.tv_sec), symlinkTarget: target,
                          rdev: isDevice ? UInt64(st.st_rdev) : nil)
    }
}
