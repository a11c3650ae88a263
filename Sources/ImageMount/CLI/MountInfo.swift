#if canImport(Glibc)
import Glibc
#endif

/// One line of /proc/self/mountinfo (proc(5)): what is mounted where.
struct MountInfo: Equatable {
    /// "major:minor" of the mounted filesystem (for FUSE, an anonymous device 0:N).
    let device: String
    let mountpoint: String
    let fstype: String
    let source: String

    /// Every mount, in mount order (the last one on a path is the visible one).
    static func all() -> [MountInfo] {
        guard let text = readText("/proc/self/mountinfo") else { return [] }
        return text.split(separator: "\n").compactMap { parse(String($0)) }
    }

    /// The visible mount on `mountpoint` (an absolute path without symlinks), if any.
    static func find(mountpoint: String) -> MountInfo? {
        all().last { $0.mountpoint == mountpoint }
    }

    /// Parses "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw" (proc(5)).
    static func parse(_ line: String) -> MountInfo? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 10, let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count else { return nil }
        return MountInfo(device: fields[2], mountpoint: unescape(fields[4]), fstype: fields[dash + 1],
                         source: unescape(fields[dash + 2]))
    }

    /// Undoes the kernel's octal escapes (\040 for space, \011, \012, \134).
    static func unescape(_ s: String) -> String {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 4 <= b.count,
               let v = UInt8(String(decoding: b[(i + 1)..<(i + 4)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += chunk[..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `path` made absolute with symlinks resolved (realpath(3)), or nil when it does not exist.
    static func canonical(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
