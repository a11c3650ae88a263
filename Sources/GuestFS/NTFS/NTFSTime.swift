/// NTFS times: signed 64-bit counts of 100 ns intervals since 1601-01-01 UTC (MS-FSCC 2.1.1,
/// FILETIME; ntfs-3g/ntfstime.h ntfs2timespec, whose arithmetic this repeats with checks).
enum NTFSTime {
    /// 100 ns intervals from 1601-01-01 to 1970-01-01 (ntfstime.h NTFS_TIME_OFFSET).
    static let unixEpochOffset: Int64 = 116_444_736_000_000_000

    /// Seconds and nanoseconds since the Unix epoch; a value so far off that the shift
    /// overflows (only a hostile image has one) reads as the epoch itself.
    static func unix(_ raw: UInt64) -> (seconds: Int64, nanoseconds: Int32) {
        let (units, overflow) = Int64(bitPattern: raw).subtractingReportingOverflow(unixEpochOffset)
        guard !overflow else { return (0, 0) }
        var seconds = units / 10_000_000
        var rest = units % 10_000_000
        if rest < 0 { rest += 10_000_000; seconds -= 1 }
        return (seconds, Int32(rest * 100))
    }
}
