import GuestFSBlock
import GuestFSFilesystem

/// Which names and attributes a volume is read with, chosen at open as the kernel chooses
/// (isofs_fill_super): Rock Ridge when the root's "." record says so, else Joliet when there is a
/// Joliet SVD, else plain ISO 9660 names.
package enum ISO9660Namespace: Sendable, Equatable {
    case rockRidge
    case joliet(level: Int)
    case plain
}

/// One file or directory as the driver serves it.
struct ISO9660Node: Sendable {
    let id: UInt64
    var attributes: NodeAttributes
    /// File data: byte ranges on the device, in file order (one per section).
    let sections: [Section]
    /// A directory's extent: where its records start and how many bytes they take.
    let directory: (start: UInt64, size: UInt64)?
    let rockRidge: RockRidgeInfo

    struct Section: Sendable, Equatable {
        let deviceOffset: UInt64
        let length: UInt64
    }
}

/// Turns directory records into nodes: kernel defaults (fs/isofs/inode.c, isofs_read_inode)
/// overridden by Rock Ridge (fs/isofs/rock.c, parse_rock_ridge_inode_internal).
struct ISO9660NodeDecoder: Sendable {
    let device: any BlockDevice
    let namespace: ISO9660Namespace
    let blockSize: UInt32
    /// SP's LEN_SKP (SUSP 5.3): bytes skipped at the start of every System Use area but the root's ".".
    let suspSkip: Int
    /// The root directory's id (its "." record).
    let rootID: UInt64
    let damage: DamageLog

    /// Without Rock Ridge every directory is dr-xr-xr-x and every file -r-xr-xr-x ("r-x for
    /// all. The disc could be shared with DOS machines so virtually anything could be a valid
    /// executable", isofs_read_inode), owned by root, one link.
    static let defaultPermissions: UInt32 = 0o555

    /// The Rock Ridge entries of `record` (none outside the Rock Ridge namespace).
    func rockRidge(_ record: ISO9660DirectoryRecord) -> RockRidgeInfo {
        guard namespace == .rockRidge else { return RockRidgeInfo() }
        let skip = record.offset == rootID ? 0 : suspSkip
        let entries = ISO9660SystemUse(device: device, blockSize: blockSize)
            .entries(of: record.systemUse, skip: skip, recordOffset: record.offset, report: damage.report)
        return RockRidgeInfo(entries)
    }

    /// The node with id `id`, read from the device (ISO9660NodeID.swift says what ids are).
    func node(_ id: UInt64) throws -> ISO9660Node {
        let reader = ISO9660DirectoryReader(device: device, report: damage.report)
        let group = try reader.sections(startingAt: id, blockSize: blockSize)
        return try node(id: id, group: group, rockRidge: rockRidge(group[0]))
    }

    /// The node a record group describes. For a "." record (or a directory's record) the node is
    /// that directory; otherwise a file of one or more sections.
    func node(id: UInt64, group: [ISO9660DirectoryRecord], rockRidge rr: RockRidgeInfo) throws -> ISO9660Node {
        let first = group[0]
        let name = device.displayName
        var size: UInt64 = 0
        var sections: [ISO9660Node.Section] = []
        var directory: (start: UInt64, size: UInt64)?
        let isDirectory = first.isDirectory
        if isDirectory {
            let start = try first.dataOffset(blockSize: blockSize, device: name)
            size = UInt64(first.dataLength)
            directory = (start, size)
        } else if first.isInterleaved {
            // The kernel serves interleaved files as empty ("Interleaved files not (yet) supported").
            damage.report("\(name): ISO 9660 file record at 0x\(String(first.offset, radix: 16)) is interleaved (unsupported); it reads as empty")
        } else {
            for record in group {
                let start = try record.dataOffset(blockSize: blockSize, device: name)
                let length = UInt64(record.dataLength)
                size += length   // at most 100 sections of < 4 GiB: no overflow
                if length > 0 { sections.append(.init(deviceOffset: start, length: length)) }
            }
        }
        let blocks512 = (size + 511) / 512
        var type: NodeType = isDirectory ? .directory : .regular
        var permissions = Self.defaultPermissions
        if let mode = rr.mode {
            permissions = mode & 0o7777
            let recorded = NodeType(mode: mode)
            // The record's directory flag decides what can be listed; PX decides among the
            // non-directory types. A PX that contradicts the flag is not believed.
            if !isDirectory && recorded != .directory && recorded != .unknown { type = recorded }
        }
        if type == .symlink, let target = rr.symlinkTarget { size = UInt64(target.count) }
        let date = first.date
        var attributes = NodeAttributes(
            node: id, mode: type.modeBits | permissions, uid: rr.uid ?? 0, gid: rr.gid ?? 0, size: size,
            blocks512: blocks512, links: rr.links.map { max($0, 1) } ?? 1,
            atime: rr.access ?? date, mtime: rr.modification ?? date,
            // Some writers put ctime in CREATION: the kernel reads CREATION, then ATTRIBUTES, into ctime.
            ctime: rr.attributeChange ?? rr.creation ?? date, crtime: rr.creation)
        if type == .characterDevice || type == .blockDevice, let rdev = rr.rdev {
            attributes.rdevMajor = rdev.major
            attributes.rdevMinor = rdev.minor
        }
        if type != .regular { sections.removeAll() }
        return ISO9660Node(id: id, attributes: attributes, sections: sections, directory: directory, rockRidge: rr)
    }
}
