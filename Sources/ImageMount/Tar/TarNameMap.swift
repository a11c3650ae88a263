#if canImport(Glibc)
import Glibc
#endif

/// Host user and group names to ids, for the ACL entries of archives GNU tar made: its
/// `SCHILY.acl.*` text names users and groups as `acl_to_text` does (`user:games:r--`), by the
/// names of the host that made the archive, so the host's own /etc/passwd and /etc/group
/// (read before the sandbox; files, not NSS, which would open more) turn them back into the
/// ids GNU tar would restore. A numeric name is its id.
struct TarNameMap: Sendable {
    var users: [String: UInt32] = [:]
    var groups: [String: UInt32] = [:]

    /// Host files, trusted but still bounded: at most 16 MiB each.
    static let maxFileBytes = 16 << 20

    static func loadHost() -> TarNameMap {
        TarNameMap(users: parse(read("/etc/passwd")), groups: parse(read("/etc/group")))
    }

    /// `name:password:id:...` lines (passwd(5), group(5)).
    static func parse(_ text: [UInt8]) -> [String: UInt32] {
        var map: [String: UInt32] = [:]
        for line in text.split(separator: 0x0A) {
            let fields = line.split(separator: 0x3A, maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count >= 3, !fields[0].isEmpty, let id = UInt32(String(decoding: fields[2], as: UTF8.self)) else { continue }
            let name = String(decoding: fields[0], as: UTF8.self)
            if map[name] == nil { map[name] = id }
        }
        return map
    }

    private static func read(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < maxFileBytes {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            out += chunk[..<n]
        }
        return out
    }

    /// The id `name` stands for as a user (`user: true`) or a group, or nil.
    func id(_ name: String, user: Bool) -> UInt32? {
        if let n = UInt32(name) { return n }
        return user ? users[name] : groups[name]
    }
}
