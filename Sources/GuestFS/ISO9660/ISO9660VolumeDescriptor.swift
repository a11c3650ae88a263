import GuestFSBlock
import GuestFSFilesystem

/// The volume descriptor set (ECMA-119 8): 2048-byte descriptors from logical sector 16 on,
/// ended by a Volume Descriptor Set Terminator (type 255). We keep the Primary Volume Descriptor
/// (type 1, 8.4), the first Joliet Supplementary Volume Descriptor (type 2, 8.5, with one of the
/// UCS-2 escape sequences of the Joliet specification) and the El Torito Boot Record (type 0,
/// "El Torito" Bootable CD-ROM Format Specification 1.0, 2.0).
package struct ISO9660VolumeDescriptor: Sendable, Equatable {
    /// Volume identifier (8.4.6), padding spaces trimmed.
    package let volumeIdentifier: String
    /// System identifier (8.4.5), trimmed.
    package let systemIdentifier: String
    /// Volume set, publisher, data preparer and application identifiers (8.4.19-8.4.22), trimmed.
    package let volumeSetIdentifier: String
    package let publisherIdentifier: String
    package let dataPreparerIdentifier: String
    package let applicationIdentifier: String
    /// Volume space size (8.4.8) in logical blocks.
    package let volumeSpaceSize: UInt32
    /// Logical block size (8.4.12): 512, 1024 or 2048.
    package let logicalBlockSize: UInt32
    /// Creation and modification dates (8.4.26, 8.4.27), when specified.
    package let creationDate: Timestamp?
    package let modificationDate: Timestamp?
    /// The raw 17-byte creation and modification fields (blkid builds the UUID from them).
    let creationField: [UInt8]
    let modificationField: [UInt8]
    /// The root directory record (8.4.18, 34 bytes).
    let rootRecord: [UInt8]
    /// Where the descriptor is on the device.
    let offset: UInt64
    /// Joliet level 1-3 for a Joliet SVD, nil for the PVD.
    let jolietLevel: Int?

    /// Field offsets of ECMA-119 8.4 (the SVD of 8.5 has the same layout).
    enum Field {
        static let type = 0, standardIdentifier = 1, version = 6
        static let systemIdentifier = 8, volumeIdentifier = 40, volumeSpaceSize = 80
        static let escapeSequences = 88, logicalBlockSize = 128, rootRecord = 156
        static let volumeSetIdentifier = 190, publisherIdentifier = 318, dataPreparerIdentifier = 446
        static let applicationIdentifier = 574, creationDate = 813, modificationDate = 830
    }

    /// Decodes a PVD or a Joliet SVD at `offset`; throws when a field makes no sense.
    init(_ sector: [UInt8], offset: UInt64, jolietLevel: Int?, device: String) throws {
        let b = ISO9660Bytes(sector)
        func bad(_ reason: String) -> ImageError {
            ImageError(path: device, offset: offset, structure: jolietLevel == nil ? "ISO 9660 primary volume descriptor" : "Joliet volume descriptor",
                       reason: reason, errno: .ioError)
        }
        guard let space = b.u32both(Field.volumeSpaceSize), let blockSize = b.u16both(Field.logicalBlockSize),
              let root = b.slice(Field.rootRecord, ISO9660DirectoryRecord.rootRecordLength),
              let created = b.slice(Field.creationDate, 17), let modified = b.slice(Field.modificationDate, 17)
        else { throw bad("descriptor is shorter than 2048 bytes") }
        // 6.2.2 allows 2^(n+9); the kernel (isofs_fill_super) accepts exactly 512, 1024 and 2048.
        guard [512, 1024, 2048].contains(blockSize) else { throw bad("logical block size \(blockSize) is not 512, 1024 or 2048") }
        if jolietLevel != nil {
            // Joliet: identifiers are UCS-2 big endian (Joliet specification 2.3).
            self.volumeIdentifier = ISO9660Joliet.text(b.slice(Field.volumeIdentifier, 32) ?? [])
            self.systemIdentifier = ISO9660Joliet.text(b.slice(Field.systemIdentifier, 32) ?? [])
            self.volumeSetIdentifier = ISO9660Joliet.text(b.slice(Field.volumeSetIdentifier, 128) ?? [])
            self.publisherIdentifier = ISO9660Joliet.text(b.slice(Field.publisherIdentifier, 128) ?? [])
            self.dataPreparerIdentifier = ISO9660Joliet.text(b.slice(Field.dataPreparerIdentifier, 128) ?? [])
            self.applicationIdentifier = ISO9660Joliet.text(b.slice(Field.applicationIdentifier, 128) ?? [])
        } else {
            self.volumeIdentifier = b.trimmedText(Field.volumeIdentifier, 32)
            self.systemIdentifier = b.trimmedText(Field.systemIdentifier, 32)
            self.volumeSetIdentifier = b.trimmedText(Field.volumeSetIdentifier, 128)
            self.publisherIdentifier = b.trimmedText(Field.publisherIdentifier, 128)
            self.dataPreparerIdentifier = b.trimmedText(Field.dataPreparerIdentifier, 128)
            self.applicationIdentifier = b.trimmedText(Field.applicationIdentifier, 128)
        }
        self.volumeSpaceSize = space
        self.logicalBlockSize = UInt32(blockSize)
        self.creationField = Array(created)
        self.modificationField = Array(modified)
        self.creationDate = ISO9660Date.long(created)
        self.modificationDate = ISO9660Date.long(modified)
        self.rootRecord = Array(root)
        self.offset = offset
        self.jolietLevel = jolietLevel
    }
}

/// What the descriptor set holds: the PVD, a Joliet SVD when there is one, the El Torito boot
/// catalog's location when there is a Boot Record, and the raw 32-byte volume identifiers of the
/// Joliet SVDs (blkid's label comes from the first when it differs from the PVD's).
struct ISO9660VolumeDescriptorSet {
    /// Volume descriptors start at logical sector 16 (ECMA-119 6.2.1: sectors 0-15 are the
    /// System Area, where isohybrid puts its MBR); sectors are 2048 bytes (6.1.2).
    static let firstSector: UInt64 = 16
    static let sectorSize: UInt64 = 2048
    /// At most this many descriptors are read: the kernel stops at 100 (isofs_fill_super).
    static let maxDescriptors: UInt64 = 100
    /// "CD001" (8.1.2).
    static let standardIdentifier: [UInt8] = Array("CD001".utf8)
    /// "EL TORITO SPECIFICATION" padded with NULs to 32 bytes (El Torito 2.0, Boot System Identifier).
    static let elToritoIdentifier: [UInt8] = Array("EL TORITO SPECIFICATION".utf8)

    let primary: ISO9660VolumeDescriptor
    let joliet: ISO9660VolumeDescriptor?
    /// El Torito boot catalog sector (Boot Record offset 0x47, 7.3.1), when a Boot Record is there.
    let bootCatalogSector: UInt32?
    /// The raw volume identifiers of the SVDs with a Joliet escape sequence, in order.
    let jolietVolumeIdentifiers: [[UInt8]]

    /// Joliet escape sequences (Joliet specification 2.2, SVD escape sequences field): "%/@"
    /// level 1, "%/C" level 2, "%/E" level 3.
    static func jolietLevel(_ escapes: ArraySlice<UInt8>) -> Int? {
        let e = Array(escapes.prefix(3))
        guard e.count == 3, e[0] == 0x25, e[1] == 0x2F else { return nil }
        switch e[2] {
        case 0x40: return 1
        case 0x43: return 2
        case 0x45: return 3
        default: return nil
        }
    }

    /// Reads the descriptor set of `device` (an ISO image, or a hybrid one whose MBR sits in the
    /// System Area). Throws `.invalidArgument` when there is no ISO 9660 volume at all.
    static func read(from device: any BlockDevice) throws -> ISO9660VolumeDescriptorSet {
        var primary: ISO9660VolumeDescriptor?
        var joliet: ISO9660VolumeDescriptor?
        var catalog: UInt32?
        var jolietIDs: [[UInt8]] = []
        var sector = firstSector
        while sector < firstSector + maxDescriptors {
            let offset = sector * sectorSize
            guard offset + sectorSize <= device.size else { break }
            let bytes = try device.readBytes(at: offset, count: Int(sectorSize))
            guard Array(bytes[1...5]) == standardIdentifier else { break }
            let type = bytes[0]
            if type == 255 { break }
            switch type {
            case 0 where Array(bytes[7 ..< 7 + elToritoIdentifier.count]) == elToritoIdentifier:
                if catalog == nil { catalog = ISO9660Bytes(bytes).u32le(0x47) }
            case 1 where primary == nil:
                primary = try ISO9660VolumeDescriptor(bytes, offset: offset, jolietLevel: nil, device: device.displayName)
            case 2:
                if let level = jolietLevel(bytes[88 ..< 91]) {
                    jolietIDs.append(Array(bytes[40 ..< 72]))
                    if joliet == nil {
                        // A damaged Joliet SVD is passed over: the primary tree still serves.
                        joliet = try? ISO9660VolumeDescriptor(bytes, offset: offset, jolietLevel: level, device: device.displayName)
                    }
                }
            default: break
            }
            sector += 1
        }
        guard let primary else {
            throw ImageError(path: device.displayName, offset: firstSector * sectorSize, structure: "ISO 9660 volume descriptor set",
                             reason: "no primary volume descriptor (no \"CD001\" at sector 16)", errno: .invalidArgument)
        }
        return ISO9660VolumeDescriptorSet(primary: primary, joliet: joliet, bootCatalogSector: catalog,
                                          jolietVolumeIdentifiers: jolietIDs)
    }
}
