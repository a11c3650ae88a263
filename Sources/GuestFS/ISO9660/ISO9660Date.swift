import GuestFSBlock
import GuestFSFilesystem

/// The two date forms of ECMA-119, turned into `Timestamp`s the way the Linux kernel's
/// fs/isofs/util.c (iso_date) reads them.
enum ISO9660Date {
    /// The kernel ignores a GMT offset outside ±13 hours (52 quarter hours; MAX_TZ_OFFSET in
    /// fs/isofs/inode.c): the field is then taken as 0.
    static let maxQuarterHours = 52

    /// ECMA-119 9.1.5, "Recording Date and Time" (7 bytes): years since 1900, month, day, hour,
    /// minute, second, and the offset from GMT in 15-minute units (signed). Also RRIP's TF entry
    /// in its short form. Nil when fewer than 7 bytes are given.
    static func short(_ field: ArraySlice<UInt8>) -> Timestamp? {
        guard field.count >= 7 else { return nil }
        let b = Array(field.prefix(7))
        let seconds = civilSeconds(year: 1900 + Int64(b[0]), month: Int64(b[1]), day: Int64(b[2]),
                                   hour: Int64(b[3]), minute: Int64(b[4]), second: Int64(b[5]))
        return Timestamp(seconds: seconds - offsetSeconds(b[6]), nanoseconds: 0)
    }

    /// ECMA-119 8.4.26.1, the volume descriptor date (17 bytes): "YYYYMMDDHHMMSScc" in digits,
    /// then the GMT offset as in 9.1.5. Also RRIP's TF entry in its long form. Nil when the field
    /// is short, holds a non-digit, or is "not specified" (all '0' digits with offset 0).
    static func long(_ field: ArraySlice<UInt8>) -> Timestamp? {
        guard field.count >= 17 else { return nil }
        let b = Array(field.prefix(17))
        guard b[0..<16].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        if b[0..<16].allSatisfy({ $0 == 0x30 }) && b[16] == 0 { return nil }
        func number(_ from: Int, _ width: Int) -> Int64 {
            b[from ..< from + width].reduce(0) { $0 * 10 + Int64($1 - 0x30) }
        }
        let seconds = civilSeconds(year: number(0, 4), month: number(4, 2), day: number(6, 2),
                                   hour: number(8, 2), minute: number(10, 2), second: number(12, 2))
        return Timestamp(seconds: seconds - offsetSeconds(b[16]), nanoseconds: Int32(number(14, 2)) * 10_000_000)
    }

    /// The 16 digits of a 17-byte date formatted as blkid formats the volume UUID
    /// ("YYYY-MM-DD-HH-MM-SS-cc", libblkid superblocks/iso9660.c probe_iso9660_set_uuid); nil when
    /// the date is "not specified" (all '0' and offset 0), which blkid skips.
    static func blkidUUID(_ field: ArraySlice<UInt8>) -> String? {
        guard field.count >= 17 else { return nil }
        let b = Array(field.prefix(17))
        if b[0..<16].allSatisfy({ $0 == 0x30 }) && b[16] == 0 { return nil }
        let digits = b[0..<16].map { Character(Unicode.Scalar($0)) }
        var out = String(digits[0..<4])
        for i in stride(from: 4, to: 16, by: 2) { out += "-" + String(digits[i ..< i + 2]) }
        return out
    }

    /// The offset byte in seconds; out-of-range offsets count as 0 (see `maxQuarterHours`).
    static func offsetSeconds(_ byte: UInt8) -> Int64 {
        let quarters = Int(Int8(bitPattern: byte))
        guard abs(quarters) <= maxQuarterHours else { return 0 }
        return Int64(quarters) * 15 * 60
    }

    /// Seconds since the epoch of a civil UTC date (proleptic Gregorian; days_from_civil of
    /// H. Hinnant's chrono algorithms). Out-of-range months and days are clamped so that a
    /// damaged date still gives a time, never a trap; all inputs are small, no overflow.
    static func civilSeconds(year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) -> Int64 {
        let m = min(max(month, 1), 12), d = min(max(day, 1), 31)
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + hour * 3600 + minute * 60 + second
    }
}
