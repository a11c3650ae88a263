import Foundation
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFSExt
import GuestFSVfat
import GuestFSISO9660
import GuestFSXFS
import GuestFS
import GuestFSInspect
import TestSupport

/// Builds small sparse disk images for the Disk tests and reads the oracles' view of them
/// (`sfdisk --json`, `partx`), so each test compares what we decode with what util-linux decodes.
struct DiskImageFixture {
    let dir: TempDir
    let path: String

    /// A sparse image of `megabytes` MiB (the caller then writes a table with sfdisk or sgdisk).
    init(megabytes: Int, name: String = "disk.img") throws {
        dir = try TempDir("imagemount-disk")
        path = dir.file(name)
        try Shell.check("truncate -s \(megabytes)M \(Shell.quote(path))")
    }

    /// Writes an MBR/GPT with `sfdisk`, from an sfdisk script.
    func sfdisk(_ script: String) throws {
        try Shell.check("sfdisk -q --no-reread --no-tell-kernel \(Shell.quote(path))", stdin: Data(script.utf8))
    }

    /// Runs `sgdisk ARGS IMAGE`.
    func sgdisk(_ arguments: String) throws {
        try Shell.check("sgdisk \(arguments) \(Shell.quote(path)) >/dev/null")
    }

    func open() throws -> RawImage { try RawImage(path: path, writable: false) }

    func readTable(diskName: String = "/dev/sda") throws -> PartitionTable? {
        try PartitionTable.read(from: open(), diskName: diskName)
    }

    /// Overwrites bytes of the image at `offset`: the damage a test inflicts, spelled out in the test.
    func patch(at offset: UInt64, _ bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(bytes))
    }

    /// Reads bytes of the image file directly.
    func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    /// A little-endian 32-bit field of the image, e.g. an MBR record's starting LBA.
    func le32(at offset: UInt64) throws -> UInt32 {
        try bytes(at: offset, count: 4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    func le32Bytes(_ value: UInt32) -> [UInt8] { (0 ..< 4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    func truncate(megabytes: Int) throws {
        try Shell.check("truncate -s \(megabytes)M \(Shell.quote(path))")
    }

    // MARK: Oracles

    struct SfdiskPartition {
        let number: Int
        let start: UInt64   // sectors
        let size: UInt64    // sectors
        let type: String
        let uuid: String?
        let name: String?
        let bootable: Bool
        let attrs: String?
    }

    struct SfdiskTable {
        let label: String
        let id: String
        let partitions: [SfdiskPartition]
    }

    /// `sfdisk --json IMAGE`, decoded. The partition number is the digits the node name ends in.
    func sfdiskJSON() throws -> SfdiskTable {
        let text = try Shell.check("sfdisk --json \(Shell.quote(path))")
        let root = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        let table = root["partitiontable"] as! [String: Any]
        let partitions = (table["partitions"] as? [[String: Any]] ?? []).map { p in
            let node = p["node"] as! String
            let number = Int(String(node.reversed().prefix { $0.isNumber }.reversed()))!
            return SfdiskPartition(number: number, start: (p["start"] as! NSNumber).uint64Value,
                                   size: (p["size"] as! NSNumber).uint64Value, type: p["type"] as! String,
                                   uuid: p["uuid"] as? String, name: p["name"] as? String,
                                   bootable: p["bootable"] as? Bool ?? false, attrs: p["attrs"] as? String)
        }
        return SfdiskTable(label: table["label"] as! String, id: table["id"] as! String, partitions: partitions)
    }

    /// `partx --show` (libblkid's view): partition number → UUID column (blkid's PARTUUID).
    func partxUUIDs() throws -> [Int: String] {
        let text = try Shell.check("partx -g -s -o NR,UUID \(Shell.quote(path))")
        var result: [Int: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let number = Int(fields[0]) { result[number] = String(fields[1]) }
        }
        return result
    }
}
