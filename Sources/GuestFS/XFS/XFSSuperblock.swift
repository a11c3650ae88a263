import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// The primary superblock, sb 0 (xfs_format.h `struct xfs_dsb`; "XFS Algorithms & Data
/// Structures" §10 "Superblocks"), v4 and v5, read and validated as the kernel's
/// xfs_validate_sb_common/xfs_validate_sb_read do, and turned into the `XFSGeometry` the other
/// decoders share.
///
/// Feature policy (read-only): every feature bit mkfs.xfs of RHEL 7–9 and Debian 12 sets is
/// accepted; read-only-compatible bits never stop a read-only open (the kernel mounts those
/// read-only too); an unknown incompatible bit, `needsrepair`, a realtime device and an
/// external log are refused by name, in one line.
struct XFSSuperblock: Sendable {
    /// "XFSB" (XFS_SB_MAGIC).
    static let magic: UInt32 = 0x5846_5342
    /// Byte offset of sb_crc (XFS_SB_CRC_OFF, offsetof(struct xfs_dsb, sb_crc)).
    static let crcOffset = 224
    /// What sb 0 covers of the device when it is read: the largest sector size (XFS_MAX_SECTORSIZE).
    static let maxSectorSize = 32768

    // sb_versionnum bits (XFS_SB_VERSION_*).
    static let versionNumberMask: UInt16 = 0x000F
    static let versionAttrBit: UInt16 = 0x0010
    static let versionNlinkBit: UInt16 = 0x0020
    static let versionDirV2Bit: UInt16 = 0x2000
    static let versionBorgBit: UInt16 = 0x4000   // ascii-ci
    static let versionMoreBitsBit: UInt16 = 0x8000
    // sb_features2 (XFS_SB_VERSION2_*).
    static let features2LazySBCount: UInt32 = 0x0002
    static let features2Attr2: UInt32 = 0x0008
    static let features2Crc: UInt32 = 0x0100
    static let features2Ftype: UInt32 = 0x0200
    // sb_features_incompat (XFS_SB_FEAT_INCOMPAT_*), names as xfs_db `version` prints them.
    static let incompatNames: [(bit: UInt32, name: String)] = [
        (0x01, "ftype"), (0x02, "sparse inodes"), (0x04, "meta_uuid"), (0x08, "bigtime"),
        (0x10, "needsrepair"), (0x20, "nrext64"), (0x40, "exchange-range"), (0x80, "parent pointers"),
        (0x100, "metadir"), (0x200, "zoned"),
    ]
    static let incompatFtype: UInt32 = 0x01
    static let incompatMetaUUID: UInt32 = 0x04
    static let incompatBigtime: UInt32 = 0x08
    static let incompatNeedsRepair: UInt32 = 0x10
    static let incompatNrext64: UInt32 = 0x20
    /// What this reader decodes: ftype, sparse inodes (the inode chunk layout changes, not the
    /// inode itself), meta_uuid, bigtime, nrext64, exchange-range (log items only) and parent
    /// pointers (ordinary attributes in the parent namespace).
    static let incompatSupported: UInt32 = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80

    var blockSize: UInt32
    var dataBlocks: UInt64
    var realtimeBlocks: UInt64
    var uuid: [UInt8]
    var logStart: UInt64
    var rootInode: UInt64
    var agBlocks: UInt32
    var agCount: UInt32
    var logBlocks: UInt32
    var versionNumber: UInt16
    var sectorSize: UInt16
    var inodeSize: UInt16
    var inodesPerBlock: UInt16
    /// sb_fname: the label, NUL-padded.
    var label: [UInt8]
    var blockLog: UInt8
    var sectorLog: UInt8
    var inodeLog: UInt8
    var inodesPerBlockLog: UInt8
    var agBlockLog: UInt8
    var inProgress: UInt8
    var inodeMaxPercent: UInt8
    var inodeCount: UInt64
    var freeInodes: UInt64
    var freeDataBlocks: UInt64
    var dirBlockLog: UInt8
    var features2: UInt32
    var compatFeatures: UInt32
    var roCompatFeatures: UInt32
    var incompatFeatures: UInt32
    var logIncompatFeatures: UInt32
    var metaUUID: [UInt8]

    var version: UInt16 { versionNumber & Self.versionNumberMask }
    var isV5: Bool { version == 5 }
    var hasMoreBits: Bool { versionNumber & Self.versionMoreBitsBit != 0 }
    /// xfs_has_lazysbcount: always on v5; a features2 bit on v4.
    var hasLazyCounters: Bool { isV5 || (hasMoreBits && features2 & Self.features2LazySBCount != 0) }
    var hasFtype: Bool {
        isV5 ? incompatFeatures & Self.incompatFtype != 0 : hasMoreBits && features2 & Self.features2Ftype != 0
    }
    var asciiCI: Bool { versionNumber & Self.versionBorgBit != 0 }

    /// Parses and validates sb 0 from `bytes` (at least one sector). `device` names it in errors.
    init(_ raw: [UInt8], device: String) throws {
        let b = XFSBytes(raw, structure: "XFS superblock", deviceOffset: 0)
        func refuse(_ reason: String, errno: Errno = .ioError) -> ImageError {
            ImageError(path: device, offset: 0, structure: "XFS superblock", reason: reason, errno: errno)
        }
        guard try b.u32(0) == Self.magic else { throw refuse("bad magic (not XFSB)") }
        blockSize = try b.u32(4)
        dataBlocks = try b.u64(8)
        realtimeBlocks = try b.u64(16)
        uuid = try b.slice(32, 16)
        logStart = try b.u64(48)
        rootInode = try b.u64(56)
        agBlocks = try b.u32(84)
        agCount = try b.u32(88)
        logBlocks = try b.u32(96)
        versionNumber = try b.u16(100)
        sectorSize = try b.u16(102)
        inodeSize = try b.u16(104)
        inodesPerBlock = try b.u16(106)
        label = try b.slice(108, 12)
        blockLog = try b.u8(120)
        sectorLog = try b.u8(121)
        inodeLog = try b.u8(122)
        inodesPerBlockLog = try b.u8(123)
        agBlockLog = try b.u8(124)
        inProgress = try b.u8(126)
        inodeMaxPercent = try b.u8(127)
        inodeCount = try b.u64(128)
        freeInodes = try b.u64(136)
        freeDataBlocks = try b.u64(144)
        dirBlockLog = try b.u8(192)
        features2 = try b.u32(200)
        compatFeatures = try b.u32(208)
        roCompatFeatures = try b.u32(212)
        incompatFeatures = try b.u32(216)
        logIncompatFeatures = try b.u32(220)
        metaUUID = uuid

        guard version == 4 || version == 5 else {
            throw refuse("superblock version \(version) is not 4 or 5", errno: .notSupported)
        }
        if isV5 {
            // Only now is the sector size known that the CRC covers (xfs_sb_read_verify).
            guard Int(sectorSize) <= raw.count, sectorSize >= 512,
                  XFSChecksum.verify(Array(raw[0 ..< Int(sectorSize)]), crcOffset: Self.crcOffset) else {
                throw refuse("CRC mismatch (the superblock is damaged)")
            }
            if incompatFeatures & Self.incompatMetaUUID != 0 { metaUUID = try b.slice(248, 16) }
            if incompatFeatures & Self.incompatNeedsRepair != 0 {
                throw refuse("the filesystem is marked needsrepair (run xfs_repair first)", errno: .notSupported)
            }
            let unknown = incompatFeatures & ~Self.incompatSupported
            if unknown != 0 {
                let names = Self.incompatNames.filter { unknown & $0.bit != 0 }.map(\.name)
                let what = names.isEmpty ? "unknown incompatible feature 0x\(String(unknown, radix: 16))"
                    : "incompatible feature \(names.joined(separator: ", ")) (0x\(String(unknown, radix: 16)))"
                throw refuse("\(what) is not supported", errno: .notSupported)
            }
        } else {
            // xfs_sb_good_v4_features: v4 needs directory v2 and extent flags; v5-only bits refused.
            guard versionNumber & Self.versionDirV2Bit != 0 else {
                throw refuse("v4 superblock without directory version 2 is not supported", errno: .notSupported)
            }
            if hasMoreBits && features2 & Self.features2Crc != 0 {
                throw refuse("v4 superblock has the CRC feature bit set")
            }
        }
        try validateGeometry(refuse)
        if realtimeBlocks != 0 {
            throw refuse("a realtime device is not supported (sb_rblocks \(realtimeBlocks))", errno: .notSupported)
        }
        if logStart == 0 {
            throw refuse("an external log device is not supported (sb_logstart 0)", errno: .notSupported)
        }
    }

    /// The size, log and count checks of xfs_validate_sb_common, so that every later shift and
    /// product of these values is in range.
    private func validateGeometry(_ refuse: (String, Errno) -> ImageError) throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw refuse(what, .ioError) } }
        try check(sectorSize >= 512 && sectorSize <= 32768 && sectorSize & (sectorSize - 1) == 0
                  && 1 << UInt32(sectorLog) == UInt32(sectorSize), "sector size \(sectorSize) (log \(sectorLog)) is invalid")
        try check(blockSize >= 512 && blockSize <= 65536 && blockSize & (blockSize - 1) == 0
                  && blockLog < 32 && 1 << UInt32(blockLog) == blockSize && blockSize >= UInt32(sectorSize),
                  "block size \(blockSize) (log \(blockLog)) is invalid")
        try check(inodeSize >= 256 && inodeSize <= 2048 && inodeLog < 16 && 1 << UInt16(inodeLog) == inodeSize
                  && UInt32(inodeSize) <= blockSize, "inode size \(inodeSize) (log \(inodeLog)) is invalid")
        try check(!isV5 || inodeSize >= 512, "v5 inode size \(inodeSize) is below 512")
        try check(inodesPerBlockLog < 8 && Int(blockLog) - Int(inodeLog) == Int(inodesPerBlockLog)
                  && UInt32(inodesPerBlock) == blockSize / UInt32(inodeSize), "inodes per block \(inodesPerBlock) (log \(inodesPerBlockLog)) is invalid")
        try check(agCount >= 1 && agBlocks >= 64 && agBlockLog < 32 && UInt64(agBlocks) <= 1 << UInt64(agBlockLog)
                  && (agBlockLog == 0 || UInt64(agBlocks) > 1 << UInt64(agBlockLog - 1)),
                  "AG geometry (\(agCount) AGs of \(agBlocks) blocks, log \(agBlockLog)) is invalid")
        try check(Int(agBlockLog) + Int(inodesPerBlockLog) <= 32, "inode numbers need \(Int(agBlockLog) + Int(inodesPerBlockLog)) AG bits")
        let (full, o1) = UInt64(agCount - 1).multipliedReportingOverflow(by: UInt64(agBlocks))
        try check(!o1 && dataBlocks > full && dataBlocks <= full + UInt64(agBlocks),
                  "data blocks \(dataBlocks) do not fit \(agCount) AGs of \(agBlocks) blocks")
        try check(dataBlocks <= UInt64.max >> UInt64(blockLog + 1), "data blocks \(dataBlocks) overflow a byte offset")
        try check(Int(blockLog) + Int(dirBlockLog) <= 16, "directory block log \(dirBlockLog) is too large")
        try check(inodeMaxPercent <= 100, "imax_pct \(inodeMaxPercent) is over 100")
        try check(logStart == 0 || (logStart < dataBlocks || logBlocks == 0), "log start \(logStart) lies outside the data blocks")
    }

    var geometry: XFSGeometry {
        XFSGeometry(blockSize: blockSize, blockLog: blockLog, sectorSize: UInt32(sectorSize), inodeSize: inodeSize,
                    inodesPerBlockLog: inodesPerBlockLog, agBlocks: agBlocks, agBlockLog: agBlockLog, agCount: agCount,
                    dirBlockLog: dirBlockLog, isV5: isV5, hasFtype: hasFtype, asciiCI: asciiCI, metaUUID: metaUUID,
                    hasNrext64: incompatFeatures & Self.incompatNrext64 != 0,
                    hasBigtime: incompatFeatures & Self.incompatBigtime != 0)
    }

    /// The label as blkid shows it (sb_fname up to the first NUL).
    var labelText: String { String(decoding: label.prefix { $0 != 0 }, as: UTF8.self) }

    /// Reads sb 0 from the start of `device`.
    static func read(from device: any BlockDevice) throws -> XFSSuperblock {
        let count = Int(min(UInt64(maxSectorSize), device.size))
        guard count >= 512 else {
            throw ImageError(path: device.displayName, offset: 0, structure: "XFS superblock",
                             reason: "the device (\(device.size) bytes) is too small to hold one", errno: .ioError)
        }
        return try XFSSuperblock(device.readBytes(at: 0, count: count), device: device.displayName)
    }
}
