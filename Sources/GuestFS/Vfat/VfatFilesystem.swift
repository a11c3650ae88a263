import GuestFSBlock
import GuestFSFilesystem
import SystemPackage
import Synchronization

/// A FAT12/16/32 filesystem with VFAT long names, read and written in Swift, shown as the Linux
/// kernel's vfat driver shows it (fs/fat/): modes, owner and time offset from mount options,
/// mtime in 2-second units, ctime = mtime, atime a date, crtime from the creation fields.
///
/// One lock guards the FAT, the node table and every directory change. File data is read
/// outside it: `VfatFile` resolves the clusters under the lock, then reads the device.
/// Node ids are described in VfatNodeTable.swift.
package final class VfatFilesystem: GuestFilesystem, @unchecked Sendable {
    package let device: any BlockDevice
    package let isWritable: Bool
    package let options: VfatMountOptions
    package var typeName: String { "vfat" }
    package var rootNode: UInt64 { VfatNodeTable.root }
    /// The preferred I/O size: one cluster (the kernel's fat_getattr gives cluster_size).
    package var blockSize: UInt32 { boot.clusterSize }
    /// FAT12, FAT16 or FAT32.
    package var fatType: VfatType { boot.type }
    /// The volume ID as blkid shows it ("XXXX-XXXX"), when the boot sector has one.
    package var uuid: String? { boot.uuidString }
    /// The label: the root directory's volume-label entry, else the boot sector's (blkid's
    /// order), without trailing spaces; nil when neither holds one ("NO NAME" is none).
    package let label: String?

    let boot: VfatBootSector
    /// FAT[1]'s clean-shutdown bit as found at open (nil on FAT12).
    let initialCleanBit: Bool?
    var fat32: Bool { boot.type == .fat32 }

    // Guarded by `lock`.
    private let lock = BlockingLock()
    var state: State

    struct State {
        var table: VfatTable
        var nodes = VfatNodeTable()
        /// Short entries of unlinked nodes a user still holds (kept until releaseNode).
        var orphans: [UInt64: VfatShortEntry] = [:]
        /// Nodes with clusters allocated past their size by fallocate(KEEP_SIZE), freed at release.
        var preallocated = Set<UInt64>()
        /// Directories read recently, by first cluster (0: the fixed root); dropped on changes.
        var directories: [UInt32: VfatDirectory] = [:]
        /// Cluster chains of files recently read or written, by node (see fileChain).
        var chains: [UInt64: [UInt32]] = [:]
        /// Whether the dirty marks are on the volume (set by the first write).
        var markedDirty = false
        var closed = false
        var inUse: (@Sendable (UInt64) -> Bool)?
    }

    /// Opens the FAT volume on `device` with the kernel's default options unless told others.
    package init(device: any BlockDevice, writable: Bool = false, options: VfatMountOptions = VfatMountOptions()) throws {
        guard !writable || device.isWritable else { throw device.readOnlyError(offset: 0) }
        self.device = device
        self.isWritable = writable
        self.options = options
        let boot = try VfatBootSector.read(from: device)
        if writable, boot.volumeBytes > device.size {
            throw ImageError(path: device.displayName, offset: 0, structure: "FAT boot sector",
                             reason: "volume of \(boot.volumeBytes) bytes is larger than the device (\(device.size))",
                             errno: .invalidArgument)
        }
        self.boot = boot
        var table = try VfatTable(device: device, boot: boot)
        if let info = boot.fsInfoSector {
            let at = UInt64(info) * UInt64(boot.bytesPerSector)
            if let sector = try? device.readBytes(at: at, count: 512), VfatFSInfo.isValid(sector) {
                let hint = LittleEndianBytes(sector).u32(VfatFSInfo.nextFreeOffset)
                if table.isData(hint) { table.nextFreeHint = hint }
            }
        }
        initialCleanBit = table.cleanBit
        state = State(table: table)
        var rootLabel: [UInt8]?
        if let root = try? Self.readDirectoryUnlocked(device: device, boot: boot, table: table, firstCluster: 0) {
            rootLabel = root.volumeLabel
        }
        label = Self.labelText(rootLabel) ?? Self.labelText(boot.volumeLabel)
    }

    static func labelText(_ raw: [UInt8]?) -> String? {
        guard var raw, raw.count == 11 else { return nil }
        if raw[0] == 0x05 { raw[0] = 0xE5 }
        while raw.last == 0x20 || raw.last == 0 { raw.removeLast() }
        guard !raw.isEmpty, raw != Array("NO NAME".utf8) else { return nil }
        return VfatCodePage.decode(raw)
    }

    /// Runs `body` under the lock, on an open filesystem.
    func locked<R>(_ body: (inout State) throws -> R) throws -> R {
        try lock.withLock { () throws -> R in
            guard !state.closed else {
                throw ImageError(path: device.displayName, reason: "filesystem is closed", errno: .badFileDescriptor)
            }
            return try body(&state)
        }
    }

    /// Set by the FUSE server: whether it still holds node `id` (then unlink keeps the file's
    /// clusters until releaseNode). Called under the lock; must not call back into this filesystem.
    package func setNodeInUse(_ check: @escaping @Sendable (UInt64) -> Bool) {
        lock.withLock { state.inUse = check }
    }

    func error(_ errno: Errno, _ structure: String, _ reason: String) -> ImageError {
        ImageError(path: device.displayName, structure: structure, reason: reason, errno: errno)
    }

    // MARK: Nodes and directories (under the lock)

    /// The root directory's stand-in entry: a directory at the root cluster, times 0 as the
    /// kernel's fat_read_root sets them.
    var rootEntry: VfatShortEntry {
        var e = VfatShortEntry(name: Array("           ".utf8), attributes: VfatShortEntry.directory,
                               firstCluster: fat32 ? boot.rootCluster : 0, time: VfatTime(date: 0, time: 0))
        e.accessDate = 0; e.createDate = 0; e.modifyDate = 0
        return e
    }

    /// Node `id`'s short entry, and where it is on the device (nil for the root and orphans).
    func entry(_ id: UInt64, _ s: inout State) throws -> (entry: VfatShortEntry, position: UInt64?) {
        if id == VfatNodeTable.root { return (rootEntry, nil) }
        if let orphan = s.orphans[id] { return (orphan, nil) }
        guard let position = s.nodes.position(of: id) else {
            throw error(.noSuchFileOrDirectory, "node \(id)", "no such node")
        }
        let bytes = try device.readBytes(at: position, count: 32)
        return (VfatShortEntry(bytes, at: 0, fat32: fat32), position)
    }

    /// The directory node `id` is: its contents, read (or taken from the cache).
    func directory(_ id: UInt64, _ s: inout State) throws -> VfatDirectory {
        let (e, _) = try entry(id, &s)
        guard e.isDirectory else { throw error(.notDirectory, "node \(id)", "not a directory") }
        // A removed directory (an orphan with no clusters) reads as empty.
        return try directory(cluster: id == VfatNodeTable.root ? 0 : e.firstCluster, &s, isRoot: id == VfatNodeTable.root)
    }

    func directory(cluster: UInt32, _ s: inout State, isRoot: Bool = false) throws -> VfatDirectory {
        if !isRoot && cluster == 0 {
            return VfatDirectory(firstCluster: 0, clusters: [], fixedOffset: 0, clusterSize: Int(boot.clusterSize),
                                 dataOffset: boot.dataOffset, raw: [], fat32: fat32)
        }
        let key = isRoot ? 0 : cluster
        if let cached = s.directories[key] { return cached }
        let dir = try Self.readDirectoryUnlocked(device: device, boot: boot, table: s.table, firstCluster: key)
        if s.directories.count >= 256 { s.directories.removeAll() }
        s.directories[key] = dir
        return dir
    }

    /// Reads directory `firstCluster` (0: the root, wherever it is).
    static func readDirectoryUnlocked(device: any BlockDevice, boot: VfatBootSector, table: VfatTable,
                                      firstCluster: UInt32) throws -> VfatDirectory {
        let cs = Int(boot.clusterSize)
        if firstCluster == 0 && boot.type != .fat32 {
            let raw = try device.readBytes(at: boot.rootDirectoryOffset, count: Int(boot.rootDirectoryBytes))
            return VfatDirectory(firstCluster: 0, clusters: [], fixedOffset: boot.rootDirectoryOffset, clusterSize: cs,
                                 dataOffset: boot.dataOffset, raw: raw, fat32: false)
        }
        let start = firstCluster == 0 ? boot.rootCluster : firstCluster
        let clusters = try table.chain(from: start, limit: VfatDirectory.maxBytes / cs, device: device.displayName)
        let raw = try readClusters(clusters, device: device, boot: boot)
        return VfatDirectory(firstCluster: start, clusters: clusters, fixedOffset: nil, clusterSize: cs,
                             dataOffset: boot.dataOffset, raw: raw, fat32: boot.type == .fat32)
    }

    /// The bytes of `clusters`, reading runs of consecutive clusters at once.
    static func readClusters(_ clusters: [UInt32], device: any BlockDevice, boot: VfatBootSector) throws -> [UInt8] {
        let cs = Int(boot.clusterSize)
        var out = [UInt8](repeating: 0, count: clusters.count * cs)
        var i = 0
        while i < clusters.count {
            var j = i + 1
            while j < clusters.count, clusters[j] == clusters[j - 1] + 1 { j += 1 }
            let at = boot.offset(ofCluster: clusters[i])
            try out.withUnsafeMutableBytes { buffer in
                try device.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[i * cs ..< j * cs]), at: at)
            }
            i = j
        }
        return out
    }

    /// The id of a directory item of `dir`.
    func id(of item: VfatDirectory.Item, in dir: VfatDirectory, _ s: inout State) -> UInt64 {
        s.nodes.id(at: dir.position(ofSlot: item.shortSlot))
    }

    // MARK: GuestFilesystem

    package func attributes(_ node: UInt64) throws -> NodeAttributes {
        try locked { s in try attributes(node, &s) }
    }

    func attributes(_ node: UInt64, _ s: inout State) throws -> NodeAttributes {
        let (e, _) = try entry(node, &s)
        let cs = UInt64(boot.clusterSize)
        let tz = options.timeOffsetMinutes
        var size = UInt64(e.size), links: UInt32 = 1
        var perms: UInt16 = 0o777
        let mode: UInt32
        if e.isDirectory {
            // fat_calc_dir_size: a directory is as big as its chain; nlink counts its
            // subdirectories (fat_subdirs), "." and ".." included, and the root adds 2.
            let dir = try directory(node, &s)
            size = node == VfatNodeTable.root && !fat32 ? boot.rootDirectoryBytes : UInt64(dir.clusters.count) * cs
            let subdirs = dir.items.filter { $0.entry.isDirectory }.count
            links = UInt32(min(subdirs + (node == VfatNodeTable.root ? 2 : 0), Int(UInt32.max)))
            if links == 0 { links = 1 }
            mode = UInt32(perms & ~options.dmask) | NodeType.directory.modeBits
        } else {
            // An unlinked file still open has no name left (the kernel's clear_nlink).
            if s.nodes.isDetached(node) { links = 0 }
            // fat_make_mode: the read-only attribute clears the write bits of a file.
            if options.showexec {
                let ext = e.name[8..<11]
                if !(ext.elementsEqual("EXE".utf8) || ext.elementsEqual("COM".utf8) || ext.elementsEqual("BAT".utf8)) {
                    perms = 0o666
                }
            }
            if e.attributes & VfatShortEntry.readOnly != 0 { perms &= ~0o222 }
            mode = UInt32(perms & ~options.fmask) | NodeType.regular.modeBits
        }
        let mtime = VfatTime(date: e.modifyDate, time: e.modifyTime).timestamp(offsetMinutes: tz)
        let atime = VfatTime(date: e.accessDate, time: 0).timestamp(offsetMinutes: tz)
        let crtime = VfatTime(date: e.createDate, time: e.createTime, centiseconds: e.createCentiseconds).timestamp(offsetMinutes: tz)
        let root = node == VfatNodeTable.root
        let zero = Timestamp(seconds: 0, nanoseconds: 0)
        return NodeAttributes(
            node: node, mode: mode, uid: options.uid, gid: options.gid, size: size,
            blocks512: (size + cs - 1) / cs * cs / 512, links: links,
            atime: root ? zero : atime, mtime: root ? zero : mtime, ctime: root ? zero : mtime,
            crtime: root ? nil : crtime)
    }

    package func lookup(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? {
        try locked { s in
            let d = try directory(dir, &s)
            guard let item = d.find(name) else { return nil }
            return id(of: item, in: d, &s)
        }
    }

    package func entries(_ dir: UInt64) throws -> [DirectoryEntry] {
        try locked { s in
            let d = try directory(dir, &s)
            return d.names.map { item in
                DirectoryEntry(name: item.name, node: id(of: item, in: d, &s),
                               type: item.entry.isDirectory ? .directory : .regular)
            }
        }
    }

    /// FAT has no symbolic links.
    package func readlink(_ node: UInt64) throws -> [UInt8] {
        _ = try attributes(node)
        throw error(.invalidArgument, "node \(node)", "not a symbolic link")
    }

    package func openFile(_ node: UInt64) throws -> any GuestFile {
        let attrs = try attributes(node)
        guard attrs.isRegular else { throw error(.isDirectory, "node \(node)", "not a regular file") }
        return VfatFile(filesystem: self, node: node)
    }

    /// FAT stores no extended attributes: the kernel's vfat lists none.
    package func xattrs(_ node: UInt64) throws -> [Xattr] {
        _ = try attributes(node)
        return []
    }

    /// As the kernel's fat_statfs: blocks are clusters, no inode counts, and f_namelen is
    /// FAT_LFN_LEN (255) times NLS_MAX_CHARSET_SIZE (6), the most bytes a 255-unit name takes.
    package func usage() throws -> FilesystemUsage {
        try locked { s in
            FilesystemUsage(blockSize: UInt64(boot.clusterSize), totalBlocks: UInt64(boot.clusterCount),
                            freeBlocks: UInt64(s.table.freeCount), availableBlocks: UInt64(s.table.freeCount),
                            totalInodes: 0, freeInodes: 0, maxNameLength: 255 * 6)
        }
    }
}
