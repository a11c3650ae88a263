import GuestFSBlock

/// The libguestfs name of the `index`th drive (0-based): `/dev/sda` … `/dev/sdz`, `/dev/sdaa` …
///
/// The suffix is a bijective base-26 numeral, as Linux's `sd_format_disk_name` (drivers/scsi/sd.c)
/// and libguestfs name disks: after `z` comes `aa`, after `zz` comes `aaa`.
public func diskName(index: Int) -> String {
    precondition(index >= 0, "drive index \(index) is negative")
    let letters = Array("abcdefghijklmnopqrstuvwxyz")
    var suffix: [Character] = []
    var n = index
    repeat {
        suffix.append(letters[n % 26])
        n = n / 26 - 1
    } while n >= 0
    return "/dev/sd" + String(suffix.reversed())
}

/// The name of partition `number` of the disk `diskName`: `/dev/sda` + 1 → `/dev/sda1`.
///
/// Linux puts a `p` between the two when the disk name ends in a digit (`/dev/nbd0p1`); the `sdX`
/// names we hand out never do, but callers may pass other names.
public func partitionName(diskName: String, number: Int) -> String {
    if let last = diskName.last, last.isNumber { return "\(diskName)p\(number)" }
    return "\(diskName)\(number)"
}
