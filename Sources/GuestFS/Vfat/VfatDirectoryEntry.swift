import GuestFSBlock
import GuestFSFilesystem

/// The 32-byte directory entry (fatgen103 §6 "FAT Directory Structure") and the long-name
/// entry that can precede it (§7 "FAT Long Directory Entries"), with the short-name checksum
/// (§7.2) and the date and time encoding (§6.1 "Date and time formats").
struct VfatShortEntry: Sendable, Equatable {
    /// DIR_Attr bits (§6).
    static let readOnly: UInt8 = 0x01, hidden: UInt8 = 0x02, system: UInt8 = 0x04, volumeID: UInt8 = 0x08
    static let directory: UInt8 = 0x10, archive: UInt8 = 0x20
    /// ATTR_LONG_NAME: the attribute byte of every long-name entry (§7).
    static let longName: UInt8 = 0x0F
    /// DIR_Name[0] of a free entry (§6.1): 0xE5 deleted, 0x00 never used (the kernel reads on
    /// past it, and so do we); 0x05 stands for a name that starts with 0xE5.
    static let deletedMark: UInt8 = 0xE5
    /// DIR_NTRes bits Windows NT and the kernel's shortname=mixed use for a lower-case base
    /// and extension (the kernel's CASE_LOWER_BASE, CASE_LOWER_EXT).
    static let lowerBase: UInt8 = 0x08, lowerExtension: UInt8 = 0x10

    var name: [UInt8]        // 11 bytes, DIR_Name
    var attributes: UInt8
    var caseFlags: UInt8     // DIR_NTRes
    var createCentiseconds: UInt8
    var createTime: UInt16
    var createDate: UInt16
    var accessDate: UInt16
    var modifyTime: UInt16
    var modifyDate: UInt16
    var firstCluster: UInt32 // DIR_FstClusHI << 16 | DIR_FstClusLO (HI only on FAT32)
    var size: UInt32

    var isDirectory: Bool { attributes & Self.directory != 0 }
    var isLongName: Bool { attributes & 0x3F == Self.longName }
    var isVolumeLabel: Bool { !isLongName && attributes & Self.volumeID != 0 }
    var isDot: Bool { name == Self.dotName || name == Self.dotDotName }
    static let dotName: [UInt8] = Array(".          ".utf8)
    static let dotDotName: [UInt8] = Array("..         ".utf8)

    init(name: [UInt8], attributes: UInt8, caseFlags: UInt8 = 0, firstCluster: UInt32 = 0, size: UInt32 = 0,
         time: VfatTime) {
        self.name = name; self.attributes = attributes; self.caseFlags = caseFlags
        self.createCentiseconds = time.centiseconds; self.createTime = time.time; self.createDate = time.date
        self.accessDate = time.date; self.modifyTime = time.time; self.modifyDate = time.date
        self.firstCluster = firstCluster; self.size = size
    }

    /// Decodes 32 bytes at `offset` of `bytes`; FAT12/16 ignore DIR_FstClusHI (§6: "always 0").
    init(_ bytes: [UInt8], at offset: Int, fat32: Bool) {
        let b = bytes
        func u16(_ o: Int) -> UInt16 { UInt16(b[offset + o]) | UInt16(b[offset + o + 1]) << 8 }
        name = Array(b[offset ..< offset + 11])
        attributes = b[offset + 11]
        caseFlags = b[offset + 12]
        createCentiseconds = b[offset + 13]
        createTime = u16(14)
        createDate = u16(16)
        accessDate = u16(18)
        let high = fat32 ? UInt32(u16(20)) : 0
        modifyTime = u16(22)
        modifyDate = u16(24)
        firstCluster = high << 16 | UInt32(u16(26))
        size = UInt32(u16(28)) | UInt32(u16(30)) << 16
    }

    /// The 32 bytes on disk.
    var encoded: [UInt8] {
        var out = name
        out.append(attributes); out.append(caseFlags); out.append(createCentiseconds)
        func put16(_ v: UInt16) { out.append(UInt8(truncatingIfNeeded: v)); out.append(UInt8(truncatingIfNeeded: v >> 8)) }
        put16(createTime); put16(createDate); put16(accessDate)
        put16(UInt16(truncatingIfNeeded: firstCluster >> 16))
        put16(modifyTime); put16(modifyDate)
        put16(UInt16(truncatingIfNeeded: firstCluster))
        put16(UInt16(truncatingIfNeeded: size)); put16(UInt16(truncatingIfNeeded: size >> 16))
        return out
    }

    /// The short name as shown without a long name: base and extension without their padding,
    /// joined by a dot, each lower-cased (in code page 437, as the kernel's
    /// nls_tolower) when its DIR_NTRes bit says so (shortname=mixed shows
    /// names the way Windows NT does), 0x05 back to 0xE5, bytes above 0x7F from code page 437.
    var displayName: [UInt8] {
        var base = Array(name[0..<8]), ext = Array(name[8..<11])
        if base.first == 0x05 { base[0] = 0xE5 }
        while base.last == 0x20 { base.removeLast() }
        while ext.last == 0x20 { ext.removeLast() }
        func lower(_ s: [UInt8], _ flag: UInt8) -> [UInt8] {
            caseFlags & flag != 0 ? s.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : VfatCodePage.lower[$0] ?? $0 } : s
        }
        var text = VfatCodePage.decode(lower(base, Self.lowerBase))
        if !ext.isEmpty { text += "." + VfatCodePage.decode(lower(ext, Self.lowerExtension)) }
        return Array(text.utf8)
    }

    /// The §7.2 checksum of an 11-byte short name that every long-name entry carries.
    static func checksum(_ name: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for byte in name.prefix(11) { sum = (sum >> 1 | sum << 7) &+ byte }
        return sum
    }
}

/// One long-name entry (§7): an ordinal (0x40 on the last, highest, part), 13 UTF-16 units in
/// three runs, and the checksum of the short name it belongs to.
struct VfatLongEntry: Sendable {
    static let lastFlag: UInt8 = 0x40
    /// Byte offsets of the 13 UTF-16 units within the entry: LDIR_Name1, Name2, Name3.
    static let unitOffsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]

    var ordinal: UInt8
    var checksum: UInt8
    var units: [UInt16]

    init(_ bytes: [UInt8], at offset: Int) {
        ordinal = bytes[offset]
        checksum = bytes[offset + 13]
        units = Self.unitOffsets.map { UInt16(bytes[offset + $0]) | UInt16(bytes[offset + $0 + 1]) << 8 }
    }

    init(ordinal: UInt8, checksum: UInt8, units: [UInt16]) {
        self.ordinal = ordinal; self.checksum = checksum; self.units = units
    }

    var encoded: [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out[0] = ordinal
        out[11] = VfatShortEntry.longName
        out[13] = checksum
        for (k, o) in Self.unitOffsets.enumerated() {
            out[o] = UInt8(truncatingIfNeeded: units[k]); out[o + 1] = UInt8(truncatingIfNeeded: units[k] >> 8)
        }
        return out
    }

    /// The entries (in on-disk order: the last part first) that store `name` for a short
    /// name with checksum `checksum`: 0x0000 after the last unit, 0xFFFF padding (§7.1).
    static func entries(for name: [UInt16], checksum: UInt8) -> [VfatLongEntry] {
        let count = (name.count + 12) / 13
        var result: [VfatLongEntry] = []
        for part in stride(from: count, through: 1, by: -1) {
            var units: [UInt16] = []
            for k in 0..<13 {
                let i = (part - 1) * 13 + k
                units.append(i < name.count ? name[i] : i == name.count ? 0 : 0xFFFF)
            }
            let ordinal = UInt8(part) | (part == count ? lastFlag : 0)
            result.append(VfatLongEntry(ordinal: ordinal, checksum: checksum, units: units))
        }
        return result
    }
}

/// A FAT date and time (§6.1): the date counts years from 1980, the time two-second units;
/// creation times add centiseconds (0–199). Stored times are local time on Windows; we have
/// no guest time zone, so they are read as UTC shifted by `time_offset` minutes (the kernel's
/// tz=UTC is offset 0, the default here; see VfatMountOptions).
struct VfatTime: Sendable, Equatable {
    var date: UInt16
    var time: UInt16
    var centiseconds: UInt8

    /// The FAT fields for `t` (seconds since the epoch), as the kernel's fat_time_unix2fat:
    /// clamped to 1980-01-01 00:00:00 … 2107-12-31 23:59:58.
    init(_ t: Timestamp, offsetMinutes: Int32) {
        // Times come from callers (utimensat allows any 64-bit second): no overflow, clamped below.
        let (shifted, overflow) = t.seconds.addingReportingOverflow(Int64(offsetMinutes) * 60)
        var seconds = overflow ? (t.seconds > 0 ? Int64.max : Int64.min) : shifted
        let minimum: Int64 = 315_532_800  // 1980-01-01
        let maximum: Int64 = 4_354_819_198  // 2107-12-31 23:59:58
        if seconds < minimum {
            date = 0x21; time = 0; centiseconds = 0; return
        }
        if seconds > maximum { seconds = maximum }
        let days = seconds / 86_400, rest = seconds % 86_400
        let (y, m, d) = VfatTime.civil(fromDays: days)
        date = UInt16((y - 1980) << 9 | m << 5 | d)
        time = UInt16(rest / 3600) << 11 | UInt16(rest / 60 % 60) << 5 | UInt16(rest % 60 / 2)
        let hundredths = min(99, max(0, Int64(t.nanoseconds) / 10_000_000))
        centiseconds = UInt8(rest % 2 * 100 + hundredths)
    }

    init(date: UInt16, time: UInt16, centiseconds: UInt8 = 0) {
        self.date = date; self.time = time; self.centiseconds = centiseconds
    }

    /// The instant these fields stand for, as the kernel's fat_time_fat2unix: month and day 0
    /// count as 1, out-of-range parts are taken as they come (no validation there either).
    func timestamp(offsetMinutes: Int32) -> Timestamp {
        let year = Int64(date >> 9) + 1980
        let month = max(1, min(12, Int64(date >> 5 & 0x0F)))
        let day = max(1, Int64(date & 0x1F))
        let days = VfatTime.days(fromCivil: year, month, 1) + day - 1
        var seconds = days * 86_400 + Int64(time >> 11) * 3600 + Int64(time >> 5 & 0x3F) * 60 + Int64(time & 0x1F) * 2
        var ns: Int32 = 0
        if centiseconds > 0 {
            let cs = Int64(min(centiseconds, 199))
            seconds += cs / 100
            ns = Int32(cs % 100) * 10_000_000
        }
        return Timestamp(seconds: seconds - Int64(offsetMinutes) * 60, nanoseconds: ns)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The inverse of `days(fromCivil:)` (civil_from_days).
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
