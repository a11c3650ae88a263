import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// One on-disk inode, v1/v2/v3 (xfs_format.h `struct xfs_dinode`; "XFS Algorithms & Data
/// Structures" §15 "On-disk Inode"): the core fields, and the data and attribute forks split at
/// di_forkoff, checked as xfs_dinode_verify does (magic, version, CRC, di_ino and UUID on v3,
/// fork formats against the file type, fork sizes against the literal area).
struct XFSInode: Sendable {
    /// "IN" (XFS_DINODE_MAGIC).
    static let magic: UInt16 = 0x494E
    /// offsetof(struct xfs_dinode, di_crc); v1/v2 inodes end their core here.
    static let crcOffset = 100
    static let v3CoreSize = 176
    // di_flags2 (XFS_DIFLAG2_*).
    static let flags2Bigtime: UInt64 = 1 << 3
    static let flags2Nrext64: UInt64 = 1 << 4
    /// XFS_BIGTIME_EPOCH_OFFSET: bigtime counts nanoseconds from the legacy epoch -2^31 s.
    static let bigtimeEpochOffset: Int64 = 1 << 31

    /// xfs_dinode_fmt.
    enum Format: UInt8, Sendable {
        case device = 0, local = 1, extents = 2, btree = 3
    }

    let number: UInt64
    let mode: UInt16
    let version: UInt8
    let format: Format
    let uid: UInt32
    let gid: UInt32
    let links: UInt32
    let atime: Timestamp
    let mtime: Timestamp
    let ctime: Timestamp
    let crtime: Timestamp?
    let size: UInt64
    /// di_nblocks: every block the inode owns (data, attribute fork, bmbt blocks).
    let blocks: UInt64
    let dataExtentCount: UInt64
    let attrExtentCount: UInt64
    let attrFormat: Format?
    let flags: UInt16
    let flags2: UInt64
    let generation: UInt32
    /// The raw data fork (the literal area up to the attribute fork).
    let dataFork: [UInt8]
    /// The raw attribute fork, nil when the inode has none (di_forkoff 0).
    let attrFork: [UInt8]?

    var type: NodeType { NodeType(mode: UInt32(mode)) }

    /// The device number of a device inode (xfs_dinode_get_rdev, in the old sysv encoding the
    /// kernel unpacks with sysv_major/sysv_minor: major 14 bits above an 18-bit minor).
    var rdev: (major: UInt32, minor: UInt32) {
        guard format == .device, dataFork.count >= 4 else { return (0, 0) }
        let raw = UInt32(dataFork[0]) << 24 | UInt32(dataFork[1]) << 16 | UInt32(dataFork[2]) << 8 | UInt32(dataFork[3])
        return ((raw >> 18) & 0x1FF, raw & 0x3FFFF)
    }

    /// Decodes inode `number` from `raw` (sb_inodesize bytes read at `deviceOffset`).
    init(_ raw: [UInt8], number: UInt64, geometry: XFSGeometry, deviceOffset: UInt64) throws {
        let b = XFSBytes(raw, structure: "inode \(number)", deviceOffset: deviceOffset)
        guard try b.u16(0) == Self.magic else { throw b.damaged("bad magic (not IN)") }
        version = try b.u8(4)
        if geometry.isV5 {
            guard version == 3 else { throw b.damaged("version \(version) inode on a v5 filesystem") }
            guard XFSChecksum.verify(raw, crcOffset: Self.crcOffset) else { throw b.damaged("CRC mismatch") }
            guard try b.u64(152) == number else { throw b.damaged("di_ino \(try b.u64(152)) is not the inode's number") }
            guard try b.slice(160, 16) == geometry.metaUUID else { throw b.damaged("UUID is not the filesystem's") }
        } else {
            guard version == 1 || version == 2 else { throw b.damaged("version \(version) inode on a v4 filesystem") }
        }
        self.number = number
        mode = try b.u16(2)
        guard mode != 0 else { throw b.damaged("is free (mode 0) but named by a directory") }
        guard let fmt = Format(rawValue: try b.u8(5)) else { throw b.damaged("data fork format \(try b.u8(5)) is unknown") }
        format = fmt
        uid = try b.u32(8)
        gid = try b.u32(12)
        links = version == 1 ? UInt32(try b.u16(6)) : try b.u32(16)
        flags2 = version == 3 ? try b.u64(120) : 0
        let bigtime = flags2 & Self.flags2Bigtime != 0
        atime = try Self.timestamp(b, 32, bigtime: bigtime)
        mtime = try Self.timestamp(b, 40, bigtime: bigtime)
        ctime = try Self.timestamp(b, 48, bigtime: bigtime)
        crtime = version == 3 ? try Self.timestamp(b, 144, bigtime: bigtime) : nil
        size = try b.u64(56)
        guard size <= UInt64(Int64.max) else { throw b.damaged("size \(size) is negative as the kernel reads it") }
        blocks = try b.u64(64)
        if flags2 & Self.flags2Nrext64 != 0 {
            dataExtentCount = try b.u64(24)
            attrExtentCount = UInt64(try b.u32(76))
        } else {
            dataExtentCount = UInt64(try b.u32(76))
            attrExtentCount = UInt64(try b.u16(80))
        }
        let forkOffset = Int(try b.u8(82)) * 8
        let rawAttrFormat = try b.u8(83)
        flags = try b.u16(90)
        generation = try b.u32(92)

        let literalStart = version == 3 ? Self.v3CoreSize : Self.crcOffset
        let literalSize = Int(geometry.inodeSize) - literalStart
        guard literalSize > 0, forkOffset < literalSize else {
            throw b.damaged("fork offset \(forkOffset) lies outside the \(literalSize)-byte literal area")
        }
        if forkOffset == 0 {
            dataFork = try b.slice(literalStart, literalSize)
            attrFork = nil
            attrFormat = nil
        } else {
            guard let af = Format(rawValue: rawAttrFormat), af != .device else {
                throw b.damaged("attribute fork format \(rawAttrFormat) is invalid")
            }
            dataFork = try b.slice(literalStart, forkOffset)
            attrFork = try b.slice(literalStart + forkOffset, literalSize - forkOffset)
            attrFormat = af
        }
        try checkForkFormat(b)
    }

    /// xfs_dinode_verify_fork: which data fork formats each file type may have.
    private func checkForkFormat(_ b: XFSBytes) throws {
        switch (type, format) {
        case (.characterDevice, .device), (.blockDevice, .device), (.fifo, .device), (.socket, .device): break
        case (.regular, .extents), (.regular, .btree), (.directory, .extents), (.directory, .btree),
             (.symlink, .extents), (.symlink, .btree): break
        case (.directory, .local), (.symlink, .local):
            guard size <= UInt64(dataFork.count) else {
                throw b.damaged("inline \(type == .directory ? "directory" : "symlink") of \(size) bytes exceeds its \(dataFork.count)-byte fork")
            }
        case (.unknown, _):
            throw b.damaged("mode 0\(String(mode, radix: 8)) has no file type")
        default:
            throw b.damaged("data fork format \(format) is invalid for mode 0\(String(mode, radix: 8))")
        }
        if format == .extents {
            let (bytes, overflow) = dataExtentCount.multipliedReportingOverflow(by: 16)
            guard !overflow, bytes <= UInt64(dataFork.count) else {
                throw b.damaged("\(dataExtentCount) data extents do not fit the \(dataFork.count)-byte fork")
            }
        }
        if attrFormat == .extents, let attrFork {
            let (bytes, overflow) = attrExtentCount.multipliedReportingOverflow(by: 16)
            guard !overflow, bytes <= UInt64(attrFork.count) else {
                throw b.damaged("\(attrExtentCount) attribute extents do not fit the \(attrFork.count)-byte fork")
            }
        }
    }

    /// xfs_timestamp_t: seconds (signed 32-bit) and nanoseconds, or with bigtime one unsigned
    /// 64-bit count of nanoseconds since the legacy epoch (xfs_inode_from_disk_ts).
    static func timestamp(_ b: XFSBytes, _ offset: Int, bigtime: Bool) throws -> Timestamp {
        if bigtime {
            let ns = try b.u64(offset)
            let seconds = Int64(ns / 1_000_000_000) - bigtimeEpochOffset
            return Timestamp(seconds: seconds, nanoseconds: Int32(ns % 1_000_000_000))
        }
        let seconds = Int64(Int32(bitPattern: try b.u32(offset)))
        let nanoseconds = try b.u32(offset + 4)
        // The kernel takes the field as is; a value past a second is damage, kept in range here.
        return Timestamp(seconds: seconds, nanoseconds: Int32(truncatingIfNeeded: min(nanoseconds, 999_999_999)))
    }

    /// What stat shows (xfs_vn_getattr): st_blocks is di_nblocks in 512-byte units (no
    /// delayed allocation in a filesystem read from an image).
    func attributes(geometry: XFSGeometry) -> NodeAttributes {
        let (blocks512, overflow) = blocks.multipliedReportingOverflow(by: UInt64(geometry.blockSize / 512))
        let dev = rdev
        return NodeAttributes(node: number, mode: UInt32(mode), uid: uid, gid: gid, size: size,
                              blocks512: overflow ? UInt64.max : blocks512, links: links,
                              atime: atime, mtime: mtime, ctime: ctime, crtime: crtime,
                              rdevMajor: dev.major, rdevMinor: dev.minor, generation: generation)
    }
}

extension XFSGeometry {
    /// Where inode `number` lives (XFS_INO_TO_AGNO / XFS_INO_TO_AGBNO / XFS_INO_TO_OFFSET:
    /// AG number, then AG block, then the inode's index in its block), or nil when the number
    /// names an AG, block or position the filesystem does not have (xfs_verify_ino).
    func inodeOffset(_ number: UInt64, dataBlocks: UInt64) -> UInt64? {
        let inoBits = UInt64(agBlockLog) + UInt64(inodesPerBlockLog)
        guard inoBits < 64 else { return nil }
        let ag = number >> inoBits
        guard ag < UInt64(agCount) else { return nil }
        let agBlock = (number >> UInt64(inodesPerBlockLog)) & ((1 << UInt64(agBlockLog)) - 1)
        let index = number & ((1 << UInt64(inodesPerBlockLog)) - 1)
        guard agBlock < UInt64(agLength(UInt32(ag), dataBlocks: dataBlocks)), agBlock > 0 else { return nil }
        let fsblock = ag << UInt64(agBlockLog) | agBlock
        guard let blockStart = byteOffset(fsblock: fsblock) else { return nil }
        return blockStart + index * UInt64(inodeSize)
    }
}
