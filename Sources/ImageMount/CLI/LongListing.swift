import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// Directory listings in the format of GNU `ls -la` in the C locale, which is what virt-ls -l
/// prints (libguestfs `ll` runs `ls -la` in its appliance).
///
/// Follows coreutils `src/ls.c` (`print_long_format`, `gobble_file`'s column widths) and
/// gnulib `filemode.c`: the mode string, the link count, owner and group, the size (or
/// "major, minor" for devices) right-aligned to the widest in the listing, the date as
/// "Mon dd HH:MM" for the last six months and "Mon dd  YYYY" otherwise, the name, and
/// " -> target" for symbolic links. A directory listing starts with "total N", N being the
/// 1K blocks of everything listed, rounded up.
struct LongListing {
    struct Entry {
        let name: [UInt8]
        let inode: NodeAttributes
        let linkTarget: [UInt8]?
    }

    let entries: [Entry]
    /// Whether to print the "total" line (directory listings, not a single file).
    let withTotal: Bool
    let now: Int64

    func render(into out: inout OutputBuffer) throws {
        if withTotal {
            let blocks512 = entries.reduce(UInt64(0)) { $0 + $1.inode.blocks512 }
            out.append("total \((blocks512 + 1) / 2)")
            try out.endLine()
        }
        let isDevice = { (i: NodeAttributes) in
            i.type == .characterDevice || i.type == .blockDevice
        }
        let linkWidth = entries.map { String($0.inode.links).utf8.count }.max() ?? 0
        let ownerWidth = entries.map { Self.userName($0.inode.uid).utf8.count }.max() ?? 0
        let groupWidth = entries.map { Self.userName($0.inode.gid).utf8.count }.max() ?? 0
        let minorWidth = entries.filter { isDevice($0.inode) }.map { String($0.inode.rdevMinor).utf8.count }.max() ?? 0
        let majorWidth = entries.filter { isDevice($0.inode) }.map { String($0.inode.rdevMajor).utf8.count }.max() ?? 0
        var sizeWidth = entries.filter { !isDevice($0.inode) }.map { String($0.inode.size).utf8.count }.max() ?? 0
        if minorWidth > 0 { sizeWidth = max(sizeWidth, majorWidth + 2 + minorWidth) }

        for entry in entries {
            let i = entry.inode
            var line = Self.modeString(i.mode) + " "
            line += String(i.links).rightAligned(linkWidth) + " "
            line += Self.userName(i.uid).leftAligned(ownerWidth) + " "
            line += Self.userName(i.gid).leftAligned(groupWidth) + " "
            if isDevice(i) {
                let major = String(i.rdevMajor).rightAligned(sizeWidth - minorWidth - 2)
                line += major + ", " + String(i.rdevMinor).rightAligned(minorWidth)
            } else {
                line += String(i.size).rightAligned(sizeWidth)
            }
            line += " " + Self.date(i.mtime, now: now) + " "
            out.append(line)
            out.append(entry.name)
            if let target = entry.linkTarget {
                out.append(" -> ")
                out.append(target)
            }
            try out.endLine()
        }
    }

    /// The guest's user and group names are not looked up: 0 is shown as root, others by number.
    static func userName(_ id: UInt32) -> String { id == 0 ? "root" : String(id) }

    /// gnulib `filemodestring`: type letter, then rwx for user, group and others with
    /// set-user-ID, set-group-ID and sticky bits folded into the x positions.
    static func modeString(_ wide: UInt32) -> String {
        let mode = UInt16(truncatingIfNeeded: wide)
        let type: Character
        switch NodeType(mode: wide) {
        case .regular: type = "-"
        case .directory: type = "d"
        case .symlink: type = "l"
        case .characterDevice: type = "c"
        case .blockDevice: type = "b"
        case .fifo: type = "p"
        case .socket: type = "s"
        case .unknown: type = "?"
        }
        func bit(_ mask: UInt16, _ c: Character) -> Character { mode & mask != 0 ? c : "-" }
        func exec(_ x: UInt16, _ special: UInt16, _ set: Character, _ unset: Character) -> Character {
            switch (mode & x != 0, mode & special != 0) {
            case (true, true): set
            case (false, true): unset
            case (true, false): "x"
            case (false, false): "-"
            }
        }
        return String([type,
                       bit(0o400, "r"), bit(0o200, "w"), exec(0o100, 0o4000, "s", "S"),
                       bit(0o040, "r"), bit(0o020, "w"), exec(0o010, 0o2000, "s", "S"),
                       bit(0o004, "r"), bit(0o002, "w"), exec(0o001, 0o1000, "t", "T")])
    }

    /// coreutils ls: a time is recent when it lies within the past six months (half of
    /// 31556952 s, the mean Gregorian year) and not in the future.
    static func date(_ t: Timestamp, now: Int64) -> String {
        let sixMonthsAgo = now - 31_556_952 / 2
        let recent = sixMonthsAgo < t.seconds && t.seconds <= now
        return strftime(recent ? "%b %e %H:%M" : "%b %e  %Y", t.seconds)
    }

    /// Formats `seconds` in the local time zone with the C library's strftime.
    static func strftime(_ format: String, _ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        guard localtime_r(&time, &parts) != nil else { return String(seconds) }
        var buffer = [CChar](repeating: 0, count: 128)
        let length = Glibc.strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }


}
