import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// HKLM\SYSTEM\MountedDevices: which volume each drive letter names, matched to this guest's
/// partitions as libguestfs matches them (daemon/inspect_fs_windows.ml `get_drive_mappings`).
///
/// Each `\DosDevices\X:` value is REG_BINARY, either
/// - 12 bytes: the MBR disk signature (4 bytes, little-endian, as at MBR offset 0x1B8) and the
///   partition's start in *bytes* (8 bytes, little-endian);
/// - "DMIO:ID:" and the GPT unique partition GUID (16 bytes in the mixed-endian GUID layout:
///   Data1, Data2, Data3 little-endian, Data4 as stored);
/// - anything else (a removable drive's device path in UTF-16, a longer blob): not a fixed disk,
///   left out as libguestfs leaves it out.
enum WindowsDriveMappings {
    static let prefix = "\\dosdevices\\"

    /// (letter, device) for every value that names a partition of `guest`, sorted by letter.
    static func read(_ hive: Hive, guest: Guest) -> [(letter: String, device: String)] {
        read(hive) { device(for: $0, in: guest) }
    }

    /// (letter, what `resolve` makes of the value's blob) for every `\DosDevices\X:` value.
    static func read(_ hive: Hive, resolve: ([UInt8]) -> String?) -> [(letter: String, device: String)] {
        guard let node = hive.node(["MountedDevices"]) else { return [] }
        var out: [(letter: String, device: String)] = []
        for (key, value) in hive.values(node) {
            let scalars = Array(key.unicodeScalars)
            guard scalars.count == 14, key.lowercased().hasPrefix(prefix),
                  scalars[12].isASCII, scalars[12].properties.isAlphabetic, scalars[13] == ":" else { continue }
            let letter = String(scalars[12]).uppercased()
            guard let data = try? hive.data(value), data.type == Hive.regBinary,
                  let device = resolve(data.bytes) else { continue }
            if !out.contains(where: { $0.0 == letter }) { out.append((letter, device)) }
        }
        // virt-inspector sorts the mappings by letter, ignoring case (compare_keys_nocase).
        return out.sorted { $0.0 < $1.0 }
    }

    /// The partition a MountedDevices blob names, or nil.
    static func device(for blob: [UInt8], in guest: Guest) -> String? {
        if blob.count >= 24, blob.prefix(8).elementsEqual("DMIO:ID:".utf8) {
            let guid = gptGUID(Array(blob[8 ..< 24]))
            for device in guest.devices where device.kind == .partition {
                guard let parent = device.parent, guest.partitionTables[parent]?.kind == .gpt else { continue }
                if device.partition?.partUUID?.lowercased() == guid { return device.name }
            }
            return nil
        }
        guard blob.count == 12 else { return nil }
        let signature = blob[0 ..< 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        let start = blob[4 ..< 12].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        let identifier = "0x" + hex(UInt64(signature), digits: 8)
        for disk in guest.drives {
            guard let table = guest.partitionTables[disk.name], table.kind == .mbr,
                  table.diskIdentifier?.lowercased() == identifier else { continue }
            if let partition = table.partitions.first(where: { $0.start == start && !$0.isExtendedContainer }) { return partition.name }
        }
        return nil
    }

    /// The GUID's text form, lowercase, as blkid prints PARTUUID (extract_guid_from_registry_blob).
    static func gptGUID(_ b: [UInt8]) -> String {
        func le(_ range: Range<Int>) -> UInt64 { range.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64(b[$1]) } }
        func be(_ range: Range<Int>) -> UInt64 { range.reduce(UInt64(0)) { $0 << 8 | UInt64(b[$1]) } }
        return "\(hex(le(0 ..< 4), digits: 8))-\(hex(le(4 ..< 6), digits: 4))-\(hex(le(6 ..< 8), digits: 4))-\(hex(be(8 ..< 10), digits: 4))-\(hex(be(10 ..< 16), digits: 12))"
    }

    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
