import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// An XFS filesystem (v4 and v5), read-only, in Swift after the on-disk format (Linux
/// fs/xfs/libxfs/xfs_format.h, xfs_da_format.h; "XFS Algorithms & Data Structures"). No C
/// library parses the image: every number read from it goes through checked arithmetic and
/// bounds (STYLE.md rules 5 and 14), every v5 metadata block is verified before it is used,
/// and a damaged block fails only the file or directory that needs it (EIO).
///
/// Node ids are inode numbers, as the kernel's st_ino; the root is sb_rootino.
public final class XFSFilesystem: GuestFilesystem {
    /// The device the filesystem was opened on (the image, partition or LV).
    public let device: any BlockDevice
    /// What every read goes through: `device`, or an overlay holding the replayed log.
    let reader: any BlockDevice
    let superblock: XFSSuperblock
    let geometry: XFSGeometry
    let inodes = XFSInodeCache()
    let listings = XFSListingCache()
    let damage = DamageLog()
    public let warnings: [String]

    public var typeName: String { "xfs" }
    public var isWritable: Bool { false }
    public var rootNode: UInt64 { superblock.rootInode }
    /// st_blksize as xfs_stat_blksize gives it without largeio: the page size, or the block
    /// size when larger.
    public var blockSize: UInt32 { max(4096, geometry.blockSize) }
    /// sb_dblocks × sb_blocksize (validated not to overflow with the superblock).
    public var declaredSize: UInt64 { superblock.dataBlocks << UInt64(geometry.blockLog) }
    /// sb_fname, and sb_uuid as blkid prints it.
    public var label: String { superblock.labelText }
    /// Whether statfs sums the AG headers (the kernel's xfs_initialize_perag_data after a log
    /// recovery) rather than trusting the superblock counters of a clean filesystem.
    let countersFromAGs: Bool
    /// The summary counters log recovery recomputed (nil when the log was clean).
    let recoveredCounters: XFSSummaryCounters?
    /// Unfinished bmap intents the overlay could not carry out, by inode, in log order
    /// (XFSFilesystem+Intents.swift applies them to the extent lists this driver resolves).
    let deferredBmaps: [UInt64: [XFSBmapIntent]]

    /// Opens the filesystem on `device`; damage met while opening (and later, until
    /// `setDamageLog`) goes to `damageLog`, or to standard error when none is given. A dirty
    /// log is replayed into memory unless `recoverLog` is false (the kernel's `norecovery`:
    /// the tree as the last written-back metadata shows it, possibly inconsistent).
    public init(device base: any BlockDevice, damageLog: (@Sendable (String) -> Void)? = nil, recoverLog: Bool = true) throws {
        if let damageLog { damage.setSink(damageLog) }
        var sb: XFSSuperblock
        do { sb = try XFSSuperblock.read(from: base) } catch { throw ImageError.wrap(error, path: base.displayName) }
        var geometry = sb.geometry
        // Everything from here reads through `device`: log recovery replaces it with an overlay
        // holding the replayed blocks when the log is dirty (the image is never written).
        var device: any BlockDevice = base
        var warnings: [String] = []
        var recovered: XFSSummaryCounters? = nil
        var deferred: [UInt64: [XFSBmapIntent]] = [:]
        if !recoverLog {
            warnings.append("\(base.displayName): XFS opened with norecovery: a dirty log is not replayed")
        } else { do {
            let raw = try base.readBytes(at: 0, count: Int(sb.sectorSize))
            if let (overlay, report) = try XFSLogRecovery.recover(device: base, superblock: raw, geometry: geometry) {
                device = overlay
                // xlog_do_recover re-reads the superblock the log may have changed.
                sb = try XFSSuperblock.read(from: overlay)
                geometry = sb.geometry
                recovered = try XFSLogRecovery.summaryCounters(device: overlay, geometry: geometry,
                                                              unfinished: report.unfinishedIntents)
                for bmap in report.deferredBmapIntents { deferred[bmap.owner, default: []].append(bmap) }
                warnings.append("\(base.displayName): the XFS log was dirty; replayed in memory, the image is unchanged (\(report))")
            }
        } catch {
            var e = ImageError.wrap(error, path: base.displayName)
            e.reason += " (the log cannot be replayed; the norecovery mount option opens the filesystem without it)"
            throw e
        } }
        self.recoveredCounters = recovered
        self.deferredBmaps = deferred
        self.device = base
        self.reader = device
        self.superblock = sb
        self.geometry = geometry
        self.warnings = warnings
        self.countersFromAGs = device !== base
        guard sb.declaredBytesFit(device: device) else {
            throw ImageError(path: base.displayName, offset: 0, structure: "XFS superblock",
                             reason: "the filesystem's \(sb.dataBlocks) blocks of \(sb.blockSize) bytes do not fit the \(base.size)-byte device",
                             errno: .ioError)
        }
        let root = try inode(sb.rootInode)
        guard root.type == .directory else {
            throw ImageError(path: base.displayName, structure: "inode \(sb.rootInode)", reason: "the root inode is not a directory", errno: .ioError)
        }
    }

    /// Where damage met after open is reported (default: standard error, as `imagemount: warning:`).
    public func setDamageLog(_ sink: @escaping @Sendable (String) -> Void) { damage.setSink(sink) }

    // MARK: Blocks and inodes

    /// At most this much is read for one block request (a 64 KiB directory block is the largest
    /// metadata unit; remote attribute values are read a block extent at a time).
    static let maxReadBytes = 1 << 20

    /// `count` filesystem blocks from `fsblock`, within one AG and the device (XFSBlockReader).
    func readBlocks(_ fsblock: UInt64, _ count: UInt32) throws -> [UInt8] {
        let agMask = (UInt64(1) << UInt64(geometry.agBlockLog)) - 1
        let bytes = UInt64(count) << UInt64(geometry.blockLog)
        guard count > 0, bytes <= UInt64(Self.maxReadBytes), let at = geometry.byteOffset(fsblock: fsblock),
              (fsblock & agMask) + UInt64(count) <= UInt64(geometry.agBlocks) else {
            throw ImageError(path: device.displayName, structure: "XFS block \(fsblock)",
                             reason: "a read of \(count) blocks there lies outside the filesystem", errno: .ioError)
        }
        try reader.checkRange(offset: at, length: Int(bytes), structure: "XFS block \(fsblock)")
        return try reader.readBytes(at: at, count: Int(bytes))
    }

    /// The block reader the directory and attribute decoders take.
    var blockReader: XFSBlockReader { { [self] fsblock, count in try readBlocks(fsblock, count) } }

    /// Inode `number`, decoded and verified (cached).
    func inode(_ number: UInt64) throws -> XFSInode {
        try inodes.inode(number) {
            guard let at = geometry.inodeOffset(number, dataBlocks: superblock.dataBlocks) else {
                throw ImageError(path: device.displayName, structure: "inode \(number)",
                                 reason: "the inode number names no inode of this filesystem", errno: .ioError)
            }
            let size = Int(geometry.inodeSize)
            try reader.checkRange(offset: at, length: size, structure: "inode \(number)")
            do {
                return try XFSInode(reader.readBytes(at: at, count: size), number: number, geometry: geometry, deviceOffset: at)
            } catch let e as ImageError {
                damage.report(e.withPath(device.displayName).description)
                throw e.withPath(device.displayName)
            }
        }
    }

    /// A fork as the directory and attribute decoders take it: inline bytes, or the extent list
    /// with a B+tree walked to its leaves. `attr` picks the attribute fork (nil when it has none).
    func fork(of inode: XFSInode, attr: Bool = false) throws -> XFSForkContents? {
        let bytes: [UInt8], format: XFSInode.Format, count: UInt64
        if attr {
            guard let a = inode.attrFork, let f = inode.attrFormat else { return nil }
            (bytes, format, count) = (a, f, inode.attrExtentCount)
        } else {
            (bytes, format, count) = (inode.dataFork, inode.format, inode.dataExtentCount)
        }
        switch format {
        case .local:
            return .local(attr ? bytes : Array(bytes.prefix(Int(min(inode.size, UInt64(bytes.count))))))
        case .device:
            return nil
        case .extents, .btree:
            do {
                var extents = try XFSBmapBtree.extents(fork: bytes, format: format, extentCount: count, inode: inode.number,
                                                       forkName: attr ? "attribute" : "data", geometry: geometry,
                                                       readBlock: { try self.readBlocks($0, 1) })
                if let pending = deferredBmaps[inode.number] {
                    _ = Self.apply(pending.filter { $0.isAttrFork == attr }, to: &extents)
                }
                return .extents(extents)
            } catch let e as ImageError {
                damage.report(e.withPath(device.displayName).description)
                throw e.withPath(device.displayName)
            }
        }
    }

    // MARK: GuestFilesystem

    public func attributes(_ node: UInt64) throws -> NodeAttributes {
        let i = try inode(node)
        var a = i.attributes(geometry: geometry)
        if deferredBmaps[node] != nil { a.blocks512 = try blocksAfterDeferredBmaps(i, recorded: a.blocks512) }
        return a
    }

    public func readlink(_ node: UInt64) throws -> [UInt8] {
        let i = try inode(node)
        guard i.type == .symlink else {
            throw ImageError(path: device.displayName, structure: "inode \(node)", reason: "not a symbolic link", errno: .invalidArgument)
        }
        guard let fork = try fork(of: i) else {
            throw ImageError(path: device.displayName, structure: "inode \(node)", reason: "symlink has no data fork", errno: .ioError)
        }
        do {
            return try XFSSymlink.target(of: i, fork: fork, geometry: geometry, readBlocks: blockReader)
        } catch let e as ImageError {
            damage.report(e.withPath(device.displayName).description)
            throw e.withPath(device.displayName)
        }
    }

    public func openFile(_ node: UInt64) throws -> any GuestFile { try open(node) }

    /// `openFile` with its concrete type: the extent map is resolved here, once.
    public func open(_ node: UInt64) throws -> XFSFile {
        let i = try inode(node)
        switch i.type {
        case .regular: break
        case .directory:
            throw ImageError(path: device.displayName, structure: "inode \(node)", reason: "is a directory", errno: .isDirectory)
        default:
            throw ImageError(path: device.displayName, structure: "inode \(node)", reason: "not a regular file", errno: .invalidArgument)
        }
        guard case .extents(let extents)? = try fork(of: i) else {
            throw ImageError(path: device.displayName, structure: "inode \(node)", reason: "regular file without an extent map", errno: .ioError)
        }
        return XFSFile(device: reader, geometry: geometry, inode: node, size: i.size, extents: extents)
    }

    public func lookup(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? { try lookupEntry(dir, name) }

    public func entries(_ dir: UInt64) throws -> [DirectoryEntry] { try directoryEntries(dir) }

    public func xattrs(_ node: UInt64) throws -> [Xattr] { try allAttributes(node) }

    public func xattr(_ node: UInt64, name: String) throws -> [UInt8]? { try attributeValue(node, name: name) }

    /// Nothing to write back; the device stays open with its owner.
    public func close() throws {}
}

extension XFSSuperblock {
    /// Whether the device holds every block the superblock declares. A truncated image is
    /// still opened by the kernel's read path only up to where it ends; here the reads past
    /// the end fail one by one, so only a device too small for the log and AG 0 is refused.
    func declaredBytesFit(device: any BlockDevice) -> Bool {
        let ag0 = UInt64(agBlocks) << UInt64(blockLog)
        return device.size >= min(ag0, dataBlocks << UInt64(blockLog))
    }
}
