import GuestFSBlock
import GuestFSFilesystem

/// An ISO 9660 volume (ECMA-119, levels 1-3), read-only, with Rock Ridge (SUSP/RRIP), Joliet and
/// El Torito, in Swift: no C library parses the image, so every number read from it goes through
/// checked arithmetic and bounds (STYLE.md rules 5 and 14).
///
/// Opened on the whole device (an .iso file, a CD/DVD image, or an isohybrid disk image whose
/// MBR sits in the ISO System Area): the volume descriptors start at byte 32768 in every case.
/// What the tree shows mirrors the Linux kernel's isofs with no mount options: Rock Ridge when
/// present, else Joliet, else plain names (ISO9660Node.swift, ISO9660Tree.swift).
package final class ISO9660Filesystem: GuestFilesystem {
    package let device: any BlockDevice
    /// Which names and attributes are served.
    package let namespace: ISO9660Namespace
    /// The Primary Volume Descriptor, and the Joliet SVD when there is one.
    package let primaryVolume: ISO9660VolumeDescriptor
    package let jolietVolume: ISO9660VolumeDescriptor?
    /// The label as blkid shows it: the PVD's volume identifier, or the Joliet SVD's when that
    /// says more (libblkid superblocks/iso9660.c: when the UCS-2 label is not the ASCII one).
    package let label: String
    /// The UUID as blkid shows it: the PVD modification date, or its creation date when that is
    /// unset, as "YYYY-MM-DD-HH-MM-SS-cc"; nil when neither is set.
    package let uuid: String?
    /// The El Torito boot catalog's entries, Initial/Default Entry first; empty when the volume
    /// has no Boot Record. A damaged catalog gives no entries and a line in `warnings`.
    package let bootEntries: [ElToritoBootEntry]
    /// Lines for the user about how the volume was opened.
    package let warnings: [String]
    package let rootNode: UInt64
    package let blockSize: UInt32

    package var typeName: String { "iso9660" }
    /// The PVD's volume space size in bytes (8.4.8 × 8.4.12); a truncated image holds less.
    package var declaredSize: UInt64 { UInt64(primaryVolume.volumeSpaceSize) * UInt64(primaryVolume.logicalBlockSize) }
    package var isWritable: Bool { false }

    let tree: ISO9660Tree
    let damage = DamageLog()

    /// Opens the volume on `device`; damage met while opening (and later, until `setDamageLog`)
    /// goes to `damageLog`, or to standard error when none is given.
    package init(device: any BlockDevice, damageLog: (@Sendable (String) -> Void)? = nil) throws {
        if let damageLog { damage.setSink(damageLog) }
        let set = try ISO9660VolumeDescriptorSet.read(from: device)
        let pvd = set.primary
        let name = device.displayName
        self.device = device
        self.primaryVolume = pvd
        self.jolietVolume = set.joliet
        self.blockSize = pvd.logicalBlockSize
        var warnings: [String] = []

        // The root's "." record says whether Rock Ridge is there (SUSP 5.3 SP, 5.5 ER).
        let pvdRoot = try Self.rootSelfID(of: pvd, device: device)
        let (rockRidge, skip) = Self.probeRockRidge(device: device, rootSelf: pvdRoot, blockSize: pvd.logicalBlockSize,
                                                    jolietPresent: set.joliet != nil, report: damage.report)
        var namespace = ISO9660Namespace.plain
        var root = pvdRoot
        if rockRidge {
            namespace = .rockRidge
        } else if let joliet = set.joliet, let level = joliet.jolietLevel,
                  joliet.logicalBlockSize == pvd.logicalBlockSize,
                  let jolietRoot = try? Self.rootSelfID(of: joliet, device: device) {
            namespace = .joliet(level: level)
            root = jolietRoot
        }
        self.namespace = namespace
        self.rootNode = root
        let decoder = ISO9660NodeDecoder(device: device, namespace: namespace, blockSize: pvd.logicalBlockSize,
                                         suspSkip: skip, rootID: root, damage: damage)
        self.tree = ISO9660Tree(decoder: decoder)
        let rootNode = try tree.node(root)
        guard rootNode.directory != nil else {
            throw ImageError(path: name, offset: root, structure: "ISO 9660 root directory", reason: "root record is not a directory", errno: .ioError)
        }

        self.label = Self.blkidLabel(pvd: pvd, jolietIdentifiers: set.jolietVolumeIdentifiers)
        self.uuid = ISO9660Date.blkidUUID(pvd.modificationField[...]) ?? ISO9660Date.blkidUUID(pvd.creationField[...])
        var boot: [ElToritoBootEntry] = []
        if let sector = set.bootCatalogSector {
            do { boot = try ElToritoCatalog.read(from: device, sector: sector) } catch {
                warnings.append("\(error)")
            }
        }
        self.bootEntries = boot
        self.warnings = warnings
    }

    /// The id of the root directory's "." record for a volume descriptor (ISO9660NodeID.swift).
    static func rootSelfID(of descriptor: ISO9660VolumeDescriptor, device: any BlockDevice) throws -> UInt64 {
        let record = try ISO9660DirectoryRecord(descriptor.rootRecord[...], offset: descriptor.offset + UInt64(ISO9660VolumeDescriptor.Field.rootRecord),
                                                device: device.displayName)
        guard record.isDirectory else {
            throw ImageError(path: device.displayName, offset: record.offset, structure: "ISO 9660 root directory record",
                             reason: "root record is not flagged as a directory", errno: .ioError)
        }
        return try record.dataOffset(blockSize: descriptor.logicalBlockSize, device: device.displayName)
    }

    /// Whether the volume is read with Rock Ridge, and SP's LEN_SKP, as isofs_fill_super decides:
    /// an SP at the start of the root's "." System Use, then an ER naming RRIP, means Rock Ridge;
    /// with no ER, Rock Ridge entries on the root are believed only when there is no Joliet tree
    /// (the kernel leaves s_rock at 2, "maybe", and Joliet wins).
    static func probeRockRidge(device: any BlockDevice, rootSelf: UInt64, blockSize: UInt32, jolietPresent: Bool,
                               report: (String) -> Void) -> (Bool, Int) {
        guard let window = try? device.readBytes(at: rootSelf, count: Int(min(255, device.size > rootSelf ? device.size - rootSelf : 0))),
              !window.isEmpty, let record = try? ISO9660DirectoryRecord(window[...], offset: rootSelf, device: device.displayName)
        else { return (false, 0) }
        let entries = ISO9660SystemUse(device: device, blockSize: blockSize)
            .entries(of: record.systemUse, skip: 0, recordOffset: rootSelf, report: report)
        guard let sp = entries.first, sp.signature == SUSPEntry.SP, sp.data.count >= 3,
              sp.data[sp.data.startIndex] == 0xBE, sp.data[sp.data.startIndex + 1] == 0xEF else {
            return (false, 0)
        }
        let skip = Int(sp.data[sp.data.startIndex + 2])
        let hasER = entries.contains { entry in
            guard entry.signature == SUSPEntry.ER else { return false }
            let d = ISO9660Bytes(entry.data)
            guard let idLength = d.u8(0), let id = d.slice(4, Int(idLength)) else { return false }
            return RockRidgeInfo.extensionIdentifiers.contains(Array(id))
        }
        if hasER { return (true, skip) }
        return (!jolietPresent && RockRidgeInfo(entries).present, skip)
    }

    /// libblkid's probe_iso9660: the PVD label, unless the first Joliet SVD's UCS-2 label is not
    /// just the same ASCII text (ascii_eq_utf16be), in which case the Joliet label.
    static func blkidLabel(pvd: ISO9660VolumeDescriptor, jolietIdentifiers: [[UInt8]]) -> String {
        guard let joliet = jolietIdentifiers.first else { return pvd.volumeIdentifier }
        let ascii = Array(pvd.volumeIdentifier.utf8) + [UInt8](repeating: 0x20, count: 32)
        var same = true
        for u in stride(from: 0, to: 32, by: 2) where joliet[u] != 0 || joliet[u + 1] != ascii[u / 2] {
            same = false
            break
        }
        return same ? pvd.volumeIdentifier : ISO9660Joliet.text(joliet[...])
    }

    /// Where damage met after open is reported (default: standard error, as `imagemount: warning:`).
    package func setDamageLog(_ sink: @escaping @Sendable (String) -> Void) { damage.setSink(sink) }

    // MARK: GuestFilesystem

    package func attributes(_ node: UInt64) throws -> NodeAttributes {
        try tree.node(node).attributes
    }

    package func lookup(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? {
        let listing = try tree.listing(dir)
        if let i = listing.byName[name] { return listing.entries[i].node }
        // Joliet lookups are case-insensitive by default (check=relaxed, isofs_fill_super).
        if case .joliet = namespace {
            let folded = name.map(Self.asciiLower)
            return listing.entries.first { $0.name.map(Self.asciiLower) == folded }?.node
        }
        return nil
    }

    static func asciiLower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

    package func entries(_ dir: UInt64) throws -> [DirectoryEntry] {
        try tree.listing(dir).entries
    }

    package func readlink(_ node: UInt64) throws -> [UInt8] {
        let n = try tree.node(node)
        guard n.attributes.isSymlink else {
            throw ImageError(path: device.displayName, offset: node, structure: "ISO 9660 node", reason: "not a symbolic link", errno: .invalidArgument)
        }
        guard let target = n.rockRidge.symlinkTarget else {
            throw ImageError(path: device.displayName, offset: node, structure: "Rock Ridge SL entry",
                             reason: "symbolic link target is damaged or longer than \(RockRidgeInfo.maxSymlinkLength) bytes", errno: .ioError)
        }
        return target
    }

    package func openFile(_ node: UInt64) throws -> any GuestFile {
        try open(node)
    }

    /// `openFile` with its concrete type.
    package func open(_ node: UInt64) throws -> ISO9660File {
        let n = try tree.node(node)
        switch n.attributes.type {
        case .regular: break
        case .directory:
            throw ImageError(path: device.displayName, offset: node, structure: "ISO 9660 node", reason: "is a directory", errno: .isDirectory)
        default:
            throw ImageError(path: device.displayName, offset: node, structure: "ISO 9660 node", reason: "not a regular file", errno: .invalidArgument)
        }
        if n.rockRidge.compressed {
            damage.report("\(device.displayName): ISO 9660 file at 0x\(String(node, radix: 16)) is zisofs-compressed (ZF); its data is served as stored")
        }
        return ISO9660File(device: device, node: n)
    }

    /// ISO 9660 has extended attribute records (9.5) but no name/value attributes; Rock Ridge none either.
    package func xattrs(_ node: UInt64) throws -> [Xattr] {
        _ = try tree.node(node)
        return []
    }

    /// As the kernel's isofs_statfs: the volume space size in logical blocks, nothing free, no
    /// inode count ("No way to figure this out easily", s_ninodes = 0), names up to NAME_MAX.
    package func usage() throws -> FilesystemUsage {
        FilesystemUsage(blockSize: UInt64(primaryVolume.logicalBlockSize), totalBlocks: UInt64(primaryVolume.volumeSpaceSize),
                        freeBlocks: 0, availableBlocks: 0, totalInodes: 0, freeInodes: 0, maxNameLength: 255)
    }

    /// Nothing to write back; the device stays open with its owner.
    package func close() throws {}
}
