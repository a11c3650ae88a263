// TEMPORARY: replaced by the disk-layer branch (PartitionTable.swift, MBR.swift, GPT.swift).
public enum PartitionTableKind: String, Sendable { case mbr, gpt }
public struct Partition: Sendable {
    public let number: Int
    public let name: String
    public let start: UInt64
    public let size: UInt64
    public let device: SliceDevice
    public let mbrType: UInt8?
    public let gptType: String?
    public let partUUID: String?
    public let partLabel: String?
    public let bootable: Bool
    public let isExtendedContainer: Bool
}
public struct PartitionTable: Sendable {
    public let kind: PartitionTableKind
    public let diskIdentifier: String?
    public let partitions: [Partition]
    public let warnings: [String]
    public static func read(from disk: any BlockDevice, diskName: String) throws -> PartitionTable? { nil }
}
public func diskName(index: Int) -> String {
    var n = index, s = ""
    repeat { s = String(UnicodeScalar(UInt8(97 + n % 26))) + s; n = n / 26 - 1 } while n >= 0
    return "/dev/sd" + s
}
