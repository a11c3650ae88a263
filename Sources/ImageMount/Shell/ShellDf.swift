import GuestFSBlock
import GuestFSFilesystem
import GuestFS

/// guestfs_df and guestfs_df_h: the text coreutils' `df` and `df -h` print in the appliance,
/// for the guest's mounted filesystems (the appliance's own are not there to list), each
/// mounted under the appliance's /sysroot as guestfsd mounts it.
///
/// The table as coreutils df.c lays it out: each column as wide as its widest cell, header
/// included, and at least its field_data width (14 for Filesystem, 5 for the sizes, 4 for
/// Use%), one space between columns; Filesystem and Mounted on aligned left (the last
/// column not padded), the numbers right. Used is f_blocks − f_bfree, Avail f_bavail, Use% is
/// Used / (Used + Avail) rounded up ("-" when both are 0); sizes are rounded up, in 1 KiB
/// blocks or with -h as human_readable's autoscale in powers of 1024 (HumanSize, ceiling).
enum ShellDf {
    static func table(_ tree: MountTree, human: Bool) throws -> String {
        var rows: [[String]] = [["Filesystem", human ? "Size" : "1K-blocks", "Used", human ? "Avail" : "Available", "Use%", "Mounted on"]]
        for mount in tree.mounts {
            let u = try mount.filesystem.usage()
            let (total, totalOverflow) = u.totalBlocks.multipliedReportingOverflow(by: u.blockSize)
            let usedBlocks = u.totalBlocks >= u.freeBlocks ? u.totalBlocks - u.freeBlocks : 0
            let (used, usedOverflow) = usedBlocks.multipliedReportingOverflow(by: u.blockSize)
            let (available, availableOverflow) = u.availableBlocks.multipliedReportingOverflow(by: u.blockSize)
            func size(_ bytes: UInt64, _ overflow: Bool) -> String {
                if overflow { return "-" }
                return human ? HumanSize.format(bytes, ceiling: true) : String(bytes / 1024 + (bytes % 1024 == 0 ? 0 : 1))
            }
            // df.c: pct = used * 100 / (used + avail), rounded up, in blocks.
            let (sum, sumOverflow) = usedBlocks.addingReportingOverflow(u.availableBlocks)
            let percent: String
            if sumOverflow || sum == 0 {
                percent = "-"
            } else {
                let (scaled, scaledOverflow) = usedBlocks.multipliedReportingOverflow(by: 100)
                percent = scaledOverflow ? "-" : "\(scaled / sum + (scaled % sum == 0 ? 0 : 1))%"
            }
            let mountpoint = mount.mountpoint == "/" ? "/sysroot" : "/sysroot" + mount.mountpoint
            rows.append([mount.deviceName, size(total, totalOverflow), size(used, usedOverflow),
                         size(available, availableOverflow), percent, mountpoint])
        }
        // df.c's field_data: the columns' least widths.
        let least = [14, 5, 5, 5, 4, 0]
        let widths = (0..<6).map { column in max(least[column], rows.map { $0[column].count }.max() ?? 0) }
        var text = ""
        for row in rows {
            var cells: [String] = []
            for (column, cell) in row.enumerated() {
                switch column {
                case 0: cells.append(cell.leftAligned(widths[column]))
                case 5: cells.append(cell)
                default: cells.append(String(repeating: " ", count: max(0, widths[column] - cell.count)) + cell)
                }
            }
            text += cells.joined(separator: " ") + "\n"
        }
        return text
    }
}
