import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// One line of /etc/fstab (fstab(5): spec, file, vfstype, mntops, freq, passno).
public struct FstabEntry: Sendable, Equatable {
    public let spec: String
    public let mountpoint: String
    public let type: String
    public let options: String
}

/// Parses /etc/fstab and decides which entries inspection mounts, as libguestfs's inspection
/// does: swap, pseudo filesystems, network filesystems and removable media are skipped.
public enum Fstab {
    /// Bounded: a real fstab is a few KiB; more than this many lines is not an fstab.
    static let maxLines = 10_000

    public static func parse(_ text: String) -> [FstabEntry] {
        var entries: [FstabEntry] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(maxLines) {
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { unescape(String($0)) }
            guard fields.count >= 2 else { continue }
            entries.append(FstabEntry(spec: fields[0], mountpoint: fields[1],
                                      type: fields.count > 2 ? fields[2] : "auto",
                                      options: fields.count > 3 ? fields[3] : "defaults"))
        }
        return entries
    }

    /// Whether inspection should try to mount this entry.
    public static func isMountable(_ entry: FstabEntry) -> Bool {
        let pseudo: Set<String> = ["swap", "proc", "sysfs", "devpts", "tmpfs", "devtmpfs", "cgroup", "cgroup2",
                                   "securityfs", "debugfs", "tracefs", "pstore", "efivarfs", "bpf", "hugetlbfs",
                                   "mqueue", "configfs", "fusectl", "binfmt_misc", "autofs", "rpc_pipefs",
                                   "nfs", "nfs4", "cifs", "smbfs", "ceph", "glusterfs", "9p", "iso9660", "udf"]
        if pseudo.contains(entry.type) { return false }
        guard entry.mountpoint.hasPrefix("/"), entry.mountpoint != "/dev", !entry.mountpoint.hasPrefix("/proc"),
              !entry.mountpoint.hasPrefix("/sys") else { return false }
        let removable = ["/dev/fd", "/dev/cdrom", "/dev/sr", "/dev/scd", "/dev/dvd", "/dev/floppy"]
        if removable.contains(where: { entry.spec.hasPrefix($0) }) || entry.spec == "none" { return false }
        return true
    }

    /// fstab escapes spaces and tabs in fields as octal (\040, \011).
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var out: [UInt8] = []
        let bytes = Array(field.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x5C, i + 3 < bytes.count,
               let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(value); i += 4
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
