/// Sizes written the way the virt-* tools write them with `-h`.
///
/// virt-filesystems, virt-ls and virt-df all call gnulib's `human_readable` with
/// `human_round_to_nearest | human_autoscale | human_base_1024 | human_SI` (guestfs-tools
/// `cat/filesystems.c` `write_row`, `cat/ls.c` `output_int64_size`, `df/output.c` `print_stat`).
/// That is: below 1024 the plain number; above, one decimal while the scaled value is below 10
/// ("1.5K", "9.9M"), a whole number from 10 on ("10K", "512M"), suffixes K M G T P E Z Y,
/// rounding half to even. Computed exactly in integers, as gnulib's integer path does.
/// With `ceiling`, rounded up instead (`human_ceiling`), as coreutils' df -h rounds.
enum HumanSize {
    private static let suffixes: [Character] = ["K", "M", "G", "T", "P", "E", "Z", "Y"]

    static func format(_ bytes: UInt64, ceiling: Bool = false) -> String {
        let base: UInt64 = 1024
        var amount = bytes
        var tenths: UInt64 = 0
        // What was dropped below the tenths digit: 0 nothing, 1 less than half, 2 exactly half,
        // 3 more than half (gnulib human.c, "rounding").
        var rounding: UInt64 = 0
        var exponent = 0
        var fraction = ""
        if amount >= base {
            repeat {
                let r10 = (amount % base) * 10 + tenths
                let r2 = (r10 % base) * 2 + (rounding >> 1)
                amount /= base
                tenths = r10 / base
                rounding = r2 < base ? (r2 + rounding != 0 ? 1 : 0) : 2 + (base < r2 + rounding ? 1 : 0)
                exponent += 1
            } while amount >= base && exponent < suffixes.count
            if amount < 10 {
                if ceiling ? 0 < rounding : 2 < rounding + (tenths & 1) {
                    tenths += 1
                    rounding = 0
                    if tenths == 10 { amount += 1; tenths = 0 }
                }
                if amount < 10 {
                    fraction = ".\(tenths)"
                    tenths = 0
                    rounding = 0
                }
            }
        }
        if ceiling ? 0 < tenths + rounding : 5 < tenths + (0 < rounding + (amount & 1) ? 1 : 0) {
            amount += 1
            if amount == base && exponent > 0 && exponent < suffixes.count {
                exponent += 1
                fraction = ".0"
                amount = 1
            }
        }
        return "\(amount)\(fraction)" + (exponent > 0 ? String(suffixes[exponent - 1]) : "")
    }
}
