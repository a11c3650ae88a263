import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// `imagemount filesystems`: like virt-filesystems, the filesystems, partitions and block
/// devices of the disk images, one per line, optionally with type, label, size and UUID.
///
/// Rows and columns follow guestfs-tools `cat/filesystems.c`; which devices count as
/// filesystems follows libguestfs `daemon/listfs.ml` (`list_filesystems`).
struct FilesystemsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filesystems",
        abstract: "List the filesystems, partitions and block devices in disk images.",
        discussion: """
            Like virt-filesystems. With no selection only filesystems are listed; swap and \
            unrecognised devices are added by --extra, and --all lists filesystems (with the extra \
            ones), partitions and block devices. --long adds the columns Type, VFS, Label, MBR, \
            Size, Parent (and UUID with --uuid); columns that do not apply show "-"; --no-title \
            leaves out the heading line. LVM UUIDs are shown with dashes, as lvs, vgs and pvs show \
            them. --logvols, --volgroups and --physvols list the LVM logical volumes, volume \
            groups and physical volumes. --boot-images lists the El Torito boot catalog of \
            install media as DEVICE:bootN rows (VFS: platform and emulation; Label: bootable or \
            not; Size: the bytes loaded at boot). A filesystem's \
            size is the space the kernel's statfs reports for it, other sizes are device sizes in \
            bytes (or rounded with -h). Names are the guest's: /dev/sda, /dev/sda1, ... \
            Example: imagemount filesystems -a vm.qcow2 --all --long -h
            """,
        helpNames: [.long]
    )

    @OptionGroup var image: ImageOptions

    @Flag(name: .customLong("all"), help: "List everything: filesystems (including swap and unknown), partitions and block devices.")
    var all = false

    @Flag(name: .customLong("filesystems"), help: "List filesystems (the default when nothing else is selected).")
    var filesystems = false

    @Flag(name: .customLong("extra"), help: "List swap and unrecognised devices with the filesystems.")
    var extra = false

    @Flag(name: [.customLong("logical-volumes"), .customLong("logvols"), .customLong("lvs")], help: "List LVM logical volumes (as /dev/VG/LV).")
    var logicalVolumes = false

    @Flag(name: [.customLong("volume-groups"), .customLong("volgroups"), .customLong("vgs")], help: "List LVM volume groups (as /dev/VG).")
    var volumeGroups = false

    @Flag(name: [.customLong("physical-volumes"), .customLong("physvols"), .customLong("pvs")], help: "List LVM physical volumes.")
    var physicalVolumes = false

    @Flag(name: [.customLong("partitions"), .customLong("parts")], help: "List partitions.")
    var partitions = false

    @Flag(name: [.customLong("block-devices"), .customLong("blkdevs")], help: "List block devices (whole disks).")
    var blockDevices = false

    @Flag(name: [.customLong("boot-images"), .customLong("boot")], help: "List the boot images of El Torito boot catalogs (install media), as NAME:bootN.")
    var bootImages = false

    @Flag(name: [.customShort("l"), .customLong("long")], help: "Long output: type, filesystem type, label, MBR id, size and parent.")
    var long = false

    @Flag(name: [.customLong("uuid"), .customLong("uuids")], help: "Add a UUID column to --long output.")
    var uuid = false

    @Flag(name: [.customShort("h"), .customLong("human-readable")], help: "Show sizes rounded with a K, M, G... suffix instead of in bytes.")
    var human = false

    @Flag(name: .customLong("csv"), help: "Write comma-separated values instead of aligned columns.")
    var csv = false

    @Flag(name: .customLong("no-title"), help: "Leave out the heading line of --long output.")
    var noTitle = false

    func validate() throws {
        // Spreadsheets would misread "1.5G" (virt-filesystems, RHBZ#600977).
        if human && csv { throw ValidationError("you cannot use -h and --csv options together") }
    }

    /// What to list, as virt-filesystems' OUTPUT_* bits.
    struct Selection: OptionSet {
        let rawValue: Int
        static let filesystems = Selection(rawValue: 1)
        static let extraFilesystems = Selection(rawValue: 2)
        static let partitions = Selection(rawValue: 4)
        static let blockDevices = Selection(rawValue: 8)
        static let logicalVolumes = Selection(rawValue: 16)
        static let volumeGroups = Selection(rawValue: 32)
        static let physicalVolumes = Selection(rawValue: 64)
        static let bootImages = Selection(rawValue: 128)
    }

    /// The columns in display order, as virt-filesystems' COLUMN_* bits.
    enum Column: CaseIterable {
        case name, type, vfsType, label, mbr, size, parents, uuid
        var heading: String {
            switch self {
            case .name: "Name"
            case .type: "Type"
            case .vfsType: "VFS"
            case .label: "Label"
            case .mbr: "MBR"
            case .size: "Size"
            case .parents: "Parent"
            case .uuid: "UUID"
            }
        }
    }

    var selection: Selection {
        var s: Selection = []
        if all { s = [.filesystems, .extraFilesystems, .partitions, .blockDevices, .logicalVolumes, .volumeGroups, .physicalVolumes, .bootImages] }
        if logicalVolumes { s.insert(.logicalVolumes) }
        if volumeGroups { s.insert(.volumeGroups) }
        if physicalVolumes { s.insert(.physicalVolumes) }
        if filesystems { s.insert(.filesystems) }
        if extra { s.formUnion([.filesystems, .extraFilesystems]) }
        if partitions { s.insert(.partitions) }
        if blockDevices { s.insert(.blockDevices) }
        if bootImages { s.insert(.bootImages) }
        return s.isEmpty ? .filesystems : s
    }

    var columns: [Column] {
        guard long else { return [.name] }
        let s = selection
        return Column.allCases.filter { column in
            switch column {
            case .vfsType, .label: s.contains(.filesystems) || s.contains(.bootImages)
            case .mbr: s.contains(.partitions)
            case .uuid: uuid
            default: true
            }
        }
    }

    func run() throws {
        let guest = try Session.openGuest(image)
        // Everything is open; what follows parses guest bytes (Sandbox.swift).
        try Sandbox.enter()
        let columns = self.columns
        var rows: [[String?]] = []
        if long && !noTitle { rows.append(columns.map(\.heading)) }
        for row in listing(guest) {
            rows.append(columns.map { row[$0] })
        }
        try StandardOutput.write(csv ? rows.map(CSV.line).joined() : Self.aligned(rows))
    }

    /// One listed device: the value of each column, nil where it does not apply.
    typealias Row = [Column: String]

    func listing(_ guest: Guest) -> [Row] {
        let s = selection
        var rows: [Row] = []
        if s.contains(.filesystems) {
            for (device, type) in Self.filesystems(of: guest) {
                if !s.contains(.extraFilesystems) && (type == "swap" || type == "unknown") { continue }
                rows.append([.name: device.name, .type: "filesystem", .vfsType: type,
                             .label: device.content.label ?? "", .size: sizeText(Self.filesystemSize(device)),
                             .parents: "", .uuid: device.content.uuid ?? ""])
            }
        }
        // LVM rows, in virt-filesystems' order (LVs, VGs, PVs) and form: an LV's parent is its
        // VG, a VG's parents are its PVs. UUIDs are shown as lvm shows them, with dashes
        // (virt-filesystems drops them; scripts compare them with lvs -o lv_uuid).
        if s.contains(.logicalVolumes) {
            for device in guest.devices where device.kind == .logicalVolume {
                let vg = guest.volumeGroups.first { $0.name == device.parent }
                let uuid = vg?.logicalVolumes.first { "/dev/\(vg?.name ?? "")/\($0.name)" == device.name }?.uuid
                rows.append([.name: device.name, .type: "lv", .size: sizeText(device.device.size),
                             .parents: device.parent.map { "/dev/" + $0 } ?? "", .uuid: Self.dashed(uuid)])
            }
        }
        if s.contains(.volumeGroups) {
            for vg in guest.volumeGroups {
                let pvs = guest.physicalVolumes.filter { $0.volumeGroup == vg.name }.map(\.name)
                rows.append([.name: "/dev/" + vg.name, .type: "vg", .size: sizeText(vg.size),
                             .parents: pvs.joined(separator: ","), .uuid: Self.dashed(vg.uuid)])
            }
        }
        if s.contains(.physicalVolumes) {
            for pv in guest.physicalVolumes {
                rows.append([.name: pv.name, .type: "pv", .size: sizeText(pv.size), .parents: "", .uuid: Self.dashed(pv.uuid)])
            }
        }
        if s.contains(.partitions) {
            for device in guest.devices where device.kind == .partition {
                var row: Row = [.name: device.name, .type: "partition", .size: sizeText(Self.deviceSize(device)),
                                .parents: device.parent ?? ""]
                if let id = device.partition?.mbrType { row[.mbr] = Self.hex2(id) }
                rows.append(row)
            }
        }
        if s.contains(.blockDevices) {
            for drive in guest.drives {
                rows.append([.name: drive.name, .type: "device", .size: sizeText(drive.device.size), .parents: ""])
            }
        }
        // Boot images after everything virt-filesystems lists, so its rows keep their order.
        // VFS holds platform and emulation ("UEFI none"), Label whether the entry is bootable,
        // Size the bytes the firmware loads.
        if s.contains(.bootImages) {
            for (device, _) in Self.filesystems(of: guest) where FilesystemRegistry.canOpen(device.content) {
                guard let fs = try? FilesystemRegistry.open(device, writable: false) else { continue }
                defer { try? fs.close() }
                for image in fs.bootImages {
                    rows.append([.name: "\(device.name):boot\(image.number)", .type: "boot",
                                 .vfsType: "\(image.platform) \(image.emulation)", .label: image.bootable ? "bootable" : "not bootable",
                                 .size: sizeText(image.loadBytes), .parents: device.name])
                }
            }
        }
        return rows
    }

    func sizeText(_ bytes: UInt64) -> String { human ? HumanSize.format(bytes) : String(bytes) }

    /// The devices libguestfs' `list_filesystems` reports, with the type it gives each: whole
    /// disks without partitions, then partitions that can hold a filesystem (not the MBR
    /// extended container, not Windows LDM/reserved/snapshot partitions). RAID and LVM members
    /// and LUKS containers are left out (their unlocked /dev/mapper/luks-UUID devices are in); nothing recognised is "unknown".
    static func filesystems(of guest: Guest) -> [(device: GuestDevice, type: String)] {
        var candidates: [GuestDevice] = []
        for drive in guest.drives where (guest.partitionTables[drive.name]?.partitions.isEmpty ?? true) {
            candidates.append(drive)
        }
        candidates += guest.devices.filter { $0.kind == .partition && canHoldFilesystem($0.partition) }
        candidates += guest.devices.filter { $0.kind == .logicalVolume || $0.kind == .luks }
        return candidates.compactMap { device in
            guard let type = device.content.type, !type.isEmpty else { return (device, "unknown") }
            if type.hasSuffix("_member") || type == "crypto_LUKS" { return nil }
            return (device, type)
        }
    }

    /// GPT types of partitions that hold no mountable filesystem (libguestfs listfs.ml,
    /// `is_partition_can_hold_filesystem`): Windows LDM metadata and data, Microsoft Reserved,
    /// Windows Snapshot.
    static let nonFilesystemGPTTypes: Set<String> = [
        "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3", "AF9B60A0-1431-4F62-BC68-3311714A69AD",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "CADDEBF1-4400-4DE8-B103-12117DCF3CCF",
    ]

    static func canHoldFilesystem(_ partition: Partition?) -> Bool {
        guard let partition else { return true }
        if partition.isExtendedContainer { return false }
        // 0x42: a Windows dynamic disk (LDM) member, the MBR form of the LDM data type.
        if partition.mbrType == 0x42 { return false }
        if let gpt = partition.gptType, nonFilesystemGPTTypes.contains(gpt.uppercased()) { return false }
        return true
    }

    /// virt-filesystems mounts each filesystem and reports statfs blocks × block size; for
    /// what it cannot mount (here: a type without a driver) it falls back to the device size.
    static func filesystemSize(_ device: GuestDevice) -> UInt64 {
        if FilesystemRegistry.canOpen(device.content), let fs = try? FilesystemRegistry.open(device, writable: false) {
            defer { try? fs.close() }
            if let usage = try? fs.usage() { return usage.totalBlocks * usage.blockSize }
        }
        return deviceSize(device)
    }

    /// The size the guest's kernel gives the device: for the MBR extended partition that is
    /// two sectors, not its extent (Linux block/partitions/msdos.c keeps the container tiny so
    /// nothing is written over the logical partitions).
    static func deviceSize(_ device: GuestDevice) -> UInt64 {
        if device.partition?.isExtendedContainer == true { return min(device.device.size, 1024) }
        return device.device.size
    }

    /// An LVM id as lvm prints it (lib/uuid/uuid.c `id_write_format`): the 32 characters in
    /// groups of 6-4-4-4-4-4-6 joined by dashes. Anything not 32 characters long is shown as it is.
    static func dashed(_ uuid: String?) -> String {
        guard let uuid else { return "" }
        let raw = Array(uuid.filter { $0 != "-" })
        guard raw.count == 32 else { return uuid }
        var groups: [String] = [], index = 0
        for length in [6, 4, 4, 4, 4, 4, 6] {
            groups.append(String(raw[index ..< index + length]))
            index += length
        }
        return groups.joined(separator: "-")
    }

    static func hex2(_ value: UInt8) -> String {
        let digits = String(value, radix: 16)
        return digits.count < 2 ? "0" + digits : digits
    }

    /// Text output as virt-filesystems writes it (`do_output_end`): each column as wide as its
    /// widest cell, two spaces between columns (one when that would pass 72 characters, counted
    /// over all eight possible columns), empty cells shown as "-", and columns with no cell at
    /// all left out.
    static func aligned(_ rows: [[String?]]) -> String {
        let count = Column.allCases.count
        var widths = [Int](repeating: 0, count: count)
        for row in rows {
            for (i, cell) in row.enumerated() {
                if let cell { widths[i] = max(widths[i], max(cell.utf8.count, 1)) }
            }
        }
        let gap = widths.reduce(0) { $0 + $1 + 2 } > 72 ? 1 : 2
        var out = ""
        for row in rows {
            var pending = 0
            for (i, width) in widths.enumerated() where width > 0 {
                out += String(repeating: " ", count: pending)
                let cell = i < row.count ? (row[i] ?? "") : ""
                let shown = cell.isEmpty ? "-" : cell
                out += shown
                pending = width - shown.utf8.count + gap
            }
            out += "\n"
        }
        return out
    }
}
