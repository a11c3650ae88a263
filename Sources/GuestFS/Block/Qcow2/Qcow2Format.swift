// On-disk layouts, constants and index math of the qcow2 format: pure values, no I/O.
//
// This file plays the part QEMU's block/qcow2.h plays: everything the other Qcow2*.swift files
// share about the format itself. The spec is docs/interop/qcow2.txt in qemu/qemu (the revision
// shipped with QEMU 7.2/8.x, which defines extended L2 entries and the compression type field);
// each layout below names the section it implements.

/// Constants of the qcow2 format, each with the place its value comes from.
package enum Qcow2 {
    /// "QFI\xfb" (qcow2 spec, "Header", bytes 0-3).
    static let magic: UInt32 = 0x5146_49FB
    /// Header size of version 2 images (qcow2 spec, "Header": "For version 2, the header is exactly 72 bytes").
    static let v2HeaderLength = 72
    /// Minimum header size of version 3 images (qcow2 spec, "Header": "at least 104 bytes").
    static let v3MinHeaderLength = 104
    /// Offset of the compression_type byte (qcow2 spec, "Additional fields").
    static let compressionTypeOffset = 104

    /// 512-byte clusters (qcow2 spec, "Header", cluster_bits: "Must not be less than 9").
    static let minClusterBits = 9
    /// 2 MiB clusters: QEMU's implementation limit (qcow2 spec, "Header", cluster_bits note).
    static let maxClusterBits = 21
    /// Extended L2 entries need 16 KiB clusters (qcow2 spec, "Header", cluster_bits note).
    static let minClusterBitsExtendedL2 = 14
    /// Extended L2 entries split a cluster into 32 subclusters (qcow2 spec, "Extended L2 Entries").
    static let subclustersPerCluster = 32

    /// QEMU's limit on the L1 table, 32 MiB (qcow2 spec, "Header", size note). A bigger table is refused
    /// before anything is allocated.
    static let maxL1TableBytes = 32 << 20
    /// QEMU's limit on the refcount table, 8 MiB (qcow2 spec, "Host cluster management", note).
    static let maxRefcountTableBytes = 8 << 20
    /// QEMU's limit on the number of internal snapshots (QCOW_MAX_SNAPSHOTS in block/qcow2.h).
    static let maxSnapshots = 65536
    /// QEMU's limit on the whole snapshot table, 64 MiB (QCOW_MAX_SNAPSHOTS_SIZE in block/qcow2.h).
    static let maxSnapshotTableBytes = 64 << 20
    /// QEMU's limit on a snapshot entry's extra data (QCOW_MAX_SNAPSHOT_EXTRA_DATA in block/qcow2.h).
    static let maxSnapshotExtraData = 1024
    /// Backing file names are at most 1023 bytes (qcow2 spec, "Header", backing_file_size).
    static let maxBackingFileNameLength = 1023
    /// refcount_order may not exceed 6 (qcow2 spec, "Header", refcount_order).
    static let maxRefcountOrder = 6
    /// refcount_order of version 2 images (qcow2 spec, "Header", refcount_order).
    static let v2RefcountOrder = 4
    /// Largest virtual size we accept: 2^61 bytes, the most a 2 MiB-cluster L1 table of QEMU's
    /// maximum size can address (qcow2 spec, "Header", size note). Keeps all index math in range.
    static let maxVirtualSize: UInt64 = 1 << 61

    /// Bits 9-55 of an L1 or L2 entry or refcount table entry: a cluster-aligned host offset
    /// (qcow2 spec, "Cluster mapping", "L1 table entry" and "Standard Cluster Descriptor").
    static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00
    /// Bit 63 of L1 and L2 entries: refcount is exactly one (qcow2 spec, "Cluster mapping").
    static let copiedFlag: UInt64 = 1 << 63
    /// Bit 62 of an L2 entry: compressed cluster (qcow2 spec, "Cluster mapping", "L2 table entry").
    static let compressedFlag: UInt64 = 1 << 62
    /// Bit 0 of a standard cluster descriptor: reads as zeros (qcow2 spec, "Standard Cluster Descriptor").
    static let zeroFlag: UInt64 = 1
    /// Reserved bits of an L1 entry (qcow2 spec, "L1 table entry": bits 0-8 and 56-62).
    static let l1ReservedMask: UInt64 = 0x7F00_0000_0000_01FF
    /// Compressed data is counted in 512-byte sectors (qcow2 spec, "Compressed Clusters Descriptor").
    static let compressedSectorSize = 512
}

/// The incompatible feature bits this implementation knows (qcow2 spec, "Header", incompatible_features).
package struct Qcow2IncompatibleFeatures: OptionSet, Sendable, Hashable {
    package let rawValue: UInt64
    package init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Bit 0: refcounts may be inconsistent.
    package static let dirty = Self(rawValue: 1 << 0)
    /// Bit 1: any structure may be corrupt; never write.
    package static let corrupt = Self(rawValue: 1 << 1)
    /// Bit 2: guest clusters live in an external data file.
    package static let externalDataFile = Self(rawValue: 1 << 2)
    /// Bit 3: compression_type is present and not zlib.
    package static let compressionType = Self(rawValue: 1 << 3)
    /// Bit 4: extended L2 entries with 32 subclusters.
    package static let extendedL2 = Self(rawValue: 1 << 4)
    /// Every bit above. Any other bit makes the image unreadable to us.
    package static let known: Self = [.dirty, .corrupt, .externalDataFile, .compressionType, .extendedL2]
}

/// The compatible feature bits (qcow2 spec, "Header", compatible_features).
package struct Qcow2CompatibleFeatures: OptionSet, Sendable, Hashable {
    package let rawValue: UInt64
    package init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Bit 0: lazy refcount updates.
    package static let lazyRefcounts = Self(rawValue: 1 << 0)
}

/// The auto-clear feature bits (qcow2 spec, "Header", autoclear_features).
package struct Qcow2AutoclearFeatures: OptionSet, Sendable, Hashable {
    package let rawValue: UInt64
    package init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Bit 0: the bitmaps extension is consistent.
    package static let bitmaps = Self(rawValue: 1 << 0)
    /// Bit 1: the external data file is a consistent raw image by itself.
    package static let rawExternalData = Self(rawValue: 1 << 1)
}

/// The compressed-cluster algorithm (qcow2 spec, "Additional fields", compression_type).
package enum Qcow2CompressionType: UInt8, Sendable {
    case zlib = 0
    case zstd = 1
    /// The name `qemu-img info` prints.
    package var name: String { self == .zlib ? "zlib" : "zstd" }
}

/// The encryption method (qcow2 spec, "Header", crypt_method).
package enum Qcow2CryptMethod: UInt32, Sendable {
    case none = 0
    case aes = 1
    case luks = 2
}

/// The fixed image header (qcow2 spec, "Header", and "Additional fields (version 3 and higher)").
///
/// Fields carry the spec's names (in camelCase) in the spec's order. For version 2 images the
/// version-3 fields hold the values the spec says to assume.
package struct Qcow2Header: Sendable, Equatable {
    package var magic: UInt32
    package var version: UInt32
    package var backingFileOffset: UInt64
    package var backingFileSize: UInt32
    package var clusterBits: UInt32
    package var size: UInt64
    package var cryptMethod: UInt32
    package var l1Size: UInt32
    package var l1TableOffset: UInt64
    package var refcountTableOffset: UInt64
    package var refcountTableClusters: UInt32
    package var nbSnapshots: UInt32
    package var snapshotsOffset: UInt64
    // Version 3 and higher.
    package var incompatibleFeatures: UInt64
    package var compatibleFeatures: UInt64
    package var autoclearFeatures: UInt64
    package var refcountOrder: UInt32
    package var headerLength: UInt32
    // Additional fields.
    package var compressionType: UInt8

    /// Decodes the header from the first bytes of the file. Checks only what is needed to know the
    /// layout (magic, version, header length); `Qcow2Image` checks the values against the file.
    static func decode(_ bytes: [UInt8]) throws(Qcow2FormatError) -> Qcow2Header {
        guard bytes.count >= Qcow2.v2HeaderLength else { throw .init("file is shorter than a qcow2 header") }
        let b = Qcow2Bytes(bytes)
        let magic = b.u32(0)
        guard magic == Qcow2.magic else { throw .init("bad magic 0x\(String(magic, radix: 16)), not a qcow2 image") }
        let version = b.u32(4)
        guard version == 2 || version == 3 else {
            throw .init("unsupported qcow2 version \(version) (only 2 and 3 are defined)")
        }
        var h = Qcow2Header(
            magic: magic, version: version,
            backingFileOffset: b.u64(8), backingFileSize: b.u32(16), clusterBits: b.u32(20), size: b.u64(24),
            cryptMethod: b.u32(32), l1Size: b.u32(36), l1TableOffset: b.u64(40),
            refcountTableOffset: b.u64(48), refcountTableClusters: b.u32(56),
            nbSnapshots: b.u32(60), snapshotsOffset: b.u64(64),
            incompatibleFeatures: 0, compatibleFeatures: 0, autoclearFeatures: 0,
            refcountOrder: UInt32(Qcow2.v2RefcountOrder), headerLength: UInt32(Qcow2.v2HeaderLength),
            compressionType: 0)
        if version >= 3 {
            guard bytes.count >= Qcow2.v3MinHeaderLength else { throw .init("file is shorter than a version 3 header") }
            h.incompatibleFeatures = b.u64(72)
            h.compatibleFeatures = b.u64(80)
            h.autoclearFeatures = b.u64(88)
            h.refcountOrder = b.u32(96)
            h.headerLength = b.u32(100)
            guard h.headerLength >= Qcow2.v3MinHeaderLength, h.headerLength % 8 == 0 else {
                throw .init("header_length \(h.headerLength) is below 104 or not a multiple of 8")
            }
            guard Int(h.headerLength) <= bytes.count else {
                throw .init("header_length \(h.headerLength) runs past the first cluster")
            }
            if h.headerLength > Qcow2.compressionTypeOffset { h.compressionType = bytes[Qcow2.compressionTypeOffset] }
        }
        return h
    }

    package var incompatible: Qcow2IncompatibleFeatures { .init(rawValue: incompatibleFeatures) }
    package var compatible: Qcow2CompatibleFeatures { .init(rawValue: compatibleFeatures) }
    package var autoclear: Qcow2AutoclearFeatures { .init(rawValue: autoclearFeatures) }
    /// "0.10" for version 2, "1.1" for version 3: the `compat=` spelling of qemu-img.
    package var compat: String { version == 2 ? "0.10" : "1.1" }
}

/// One header extension (qcow2 spec, "Header extensions"): type, length, data, padded to 8 bytes.
enum Qcow2HeaderExtensionType: UInt32 {
    case end = 0x0000_0000
    case backingFormat = 0xE279_2ACA
    case featureNameTable = 0x6803_F857
    case bitmaps = 0x2385_2875
    case fullDiskEncryption = 0x0537_BE77
    case externalDataFile = 0x4441_5441
}

/// One entry of the feature name table (qcow2 spec, "Feature name table"): 48 bytes.
package struct Qcow2FeatureName: Sendable, Equatable {
    package enum Kind: UInt8, Sendable { case incompatible = 0, compatible = 1, autoclear = 2 }
    package var kind: Kind
    package var bit: UInt8
    package var name: String
    static let entrySize = 48
}

/// The bitmaps extension (qcow2 spec, "Bitmaps extension"). Bitmaps are not read, only reported.
package struct Qcow2BitmapsExtension: Sendable, Equatable {
    package var nbBitmaps: UInt32
    package var bitmapDirectorySize: UInt64
    package var bitmapDirectoryOffset: UInt64
    static let size = 24
}

/// The full disk encryption header pointer (qcow2 spec, "Full disk encryption header pointer").
package struct Qcow2EncryptionHeaderPointer: Sendable, Equatable {
    package var offset: UInt64
    package var length: UInt64
    static let size = 16
}

/// What the header extensions of an image say (qcow2 spec, "Header extensions").
package struct Qcow2Extensions: Sendable, Equatable {
    package var backingFormat: String?
    package var featureNames: [Qcow2FeatureName] = []
    package var bitmaps: Qcow2BitmapsExtension?
    package var encryptionHeader: Qcow2EncryptionHeaderPointer?
    package var externalDataFile: String?
    /// Types of extensions we do not know, kept for `info`.
    package var unknownTypes: [UInt32] = []

    /// The name the feature table gives a bit, if any.
    package func name(of kind: Qcow2FeatureName.Kind, bit: Int) -> String? {
        featureNames.first { $0.kind == kind && Int($0.bit) == bit }?.name
    }

    /// Decodes the extension area `bytes` (from the end of the header to the end of the area).
    static func decode(_ bytes: ArraySlice<UInt8>) throws(Qcow2FormatError) -> Qcow2Extensions {
        var ext = Qcow2Extensions()
        let area = Array(bytes)
        let b = Qcow2Bytes(area)
        var pos = 0
        var seen = Set<UInt32>()
        while pos + 8 <= area.count {
            let type = b.u32(pos), length = Int(b.u32(pos + 4))
            if type == Qcow2HeaderExtensionType.end.rawValue { return ext }
            let start = pos + 8
            guard length <= area.count - start else {
                throw .init("header extension 0x\(String(type, radix: 16)) at byte \(pos) claims \(length) bytes, past the extension area")
            }
            let data = Array(area[start..<(start + length)])
            let known = Qcow2HeaderExtensionType(rawValue: type)
            if known != nil, !seen.insert(type).inserted {
                throw .init("header extension 0x\(String(type, radix: 16)) appears twice")
            }
            switch known {
            case .backingFormat?:
                ext.backingFormat = Qcow2Bytes.string(data)
            case .featureNameTable?:
                for i in 0..<(length / Qcow2FeatureName.entrySize) {
                    let at = i * Qcow2FeatureName.entrySize
                    guard let kind = Qcow2FeatureName.Kind(rawValue: data[at]) else { continue }
                    let name = Qcow2Bytes.string(Array(data[(at + 2)..<(at + Qcow2FeatureName.entrySize)]))
                    ext.featureNames.append(.init(kind: kind, bit: data[at + 1], name: name))
                }
            case .bitmaps?:
                guard length >= Qcow2BitmapsExtension.size else { throw .init("bitmaps extension is \(length) bytes, need 24") }
                let d = Qcow2Bytes(data)
                ext.bitmaps = .init(nbBitmaps: d.u32(0), bitmapDirectorySize: d.u64(8), bitmapDirectoryOffset: d.u64(16))
            case .fullDiskEncryption?:
                guard length == Qcow2EncryptionHeaderPointer.size else {
                    throw .init("encryption header pointer extension is \(length) bytes, need 16")
                }
                let d = Qcow2Bytes(data)
                ext.encryptionHeader = .init(offset: d.u64(0), length: d.u64(8))
            case .externalDataFile?:
                ext.externalDataFile = Qcow2Bytes.string(data)
            case .end?, nil:
                ext.unknownTypes.append(type)
            }
            pos = start + ((length + 7) & ~7)
        }
        return ext
    }
}

/// The decoded shape of an image: cluster size, L2 layout, and the index math on guest offsets
/// (qcow2 spec, "Cluster mapping" and "Extended L2 Entries").
package struct Qcow2Geometry: Sendable, Equatable {
    package let clusterBits: Int
    package let extendedL2: Bool

    package init(clusterBits: Int, extendedL2: Bool) {
        self.clusterBits = clusterBits
        self.extendedL2 = extendedL2
    }

    package var clusterSize: Int { 1 << clusterBits }
    /// 8 bytes per L2 entry, 16 with extended L2 entries.
    package var l2EntryBytes: Int { extendedL2 ? 16 : 8 }
    /// Entries in one L2 table (one cluster).
    package var l2Entries: Int { clusterSize / l2EntryBytes }
    package var l2Bits: Int { clusterBits - (extendedL2 ? 4 : 3) }
    /// Allocation unit inside a cluster: the subcluster with extended L2, the cluster otherwise.
    package var subclusterBits: Int { extendedL2 ? clusterBits - 5 : clusterBits }
    package var subclusterSize: Int { 1 << subclusterBits }
    /// Guest bytes one L2 table maps.
    package var bytesPerL2Table: UInt64 { UInt64(1) << UInt64(clusterBits + l2Bits) }

    package func l1Index(_ guest: UInt64) -> Int { Int(guest >> UInt64(clusterBits + l2Bits)) }
    package func l2Index(_ guest: UInt64) -> Int { Int((guest >> UInt64(clusterBits)) & UInt64(l2Entries - 1)) }
    package func offsetInCluster(_ offset: UInt64) -> Int { Int(offset & UInt64(clusterSize - 1)) }
    package func subclusterIndex(_ guest: UInt64) -> Int { offsetInCluster(guest) >> subclusterBits }
    package func isClusterAligned(_ offset: UInt64) -> Bool { offset & UInt64(clusterSize - 1) == 0 }
    /// Whole clusters needed to hold `bytes`.
    package func clusters(for bytes: UInt64) -> UInt64 { (bytes + UInt64(clusterSize - 1)) >> UInt64(clusterBits) }
    /// L1 entries needed to map a virtual disk of `size` bytes.
    package func l1EntriesNeeded(for size: UInt64) -> UInt64 {
        (size + bytesPerL2Table - 1) / bytesPerL2Table
    }

    /// Where the sector count starts in a compressed descriptor: x = 62 - (cluster_bits - 8)
    /// (qcow2 spec, "Compressed Clusters Descriptor").
    var compressedSizeShift: Int { 62 - (clusterBits - 8) }
    var compressedSizeMask: UInt64 { (UInt64(1) << UInt64(clusterBits - 8)) - 1 }
    var compressedOffsetMask: UInt64 { (UInt64(1) << UInt64(compressedSizeShift)) - 1 }
}

/// A compressed cluster's place in the file (qcow2 spec, "Compressed Clusters Descriptor").
/// `length` is an upper bound: the stream may end before it.
package struct Qcow2CompressedDescriptor: Sendable, Equatable {
    package var hostOffset: UInt64
    package var length: Int

    init(entry: UInt64, geometry g: Qcow2Geometry) {
        hostOffset = entry & g.compressedOffsetMask
        let sectors = Int((entry >> UInt64(g.compressedSizeShift)) & g.compressedSizeMask) + 1
        length = sectors * Qcow2.compressedSectorSize - Int(hostOffset & UInt64(Qcow2.compressedSectorSize - 1))
    }
}

/// A decoded L2 entry (qcow2 spec, "Cluster mapping", "L2 table entry", and "Extended L2 Entries").
///
/// This initializer is the only code that looks at L2 bits. It throws for entries the spec
/// forbids, and the cluster map turns that into a corruption report.
package struct Qcow2L2Entry: Sendable, Equatable {
    /// What one allocation unit (a cluster, or a subcluster with extended L2) reads as.
    package enum Unit: Sendable, Equatable {
        case data(host: UInt64)
        case zero
        case unallocated
        case compressed(Qcow2CompressedDescriptor)
    }

    enum Kind: Sendable, Equatable {
        case unallocated
        case zero
        case data(host: UInt64)
        case compressed(Qcow2CompressedDescriptor)
        /// Extended L2: host cluster (nil when none) plus allocation and reads-as-zero bitmaps.
        case subclusters(host: UInt64?, allocated: UInt32, zero: UInt32)
    }

    let kind: Kind
    /// Bit 63 ("COPIED"): the host cluster's refcount is exactly one, so it may be written in place.
    let copied: Bool
    /// The host cluster of an uncompressed entry that has one: standard data, a standard zero
    /// entry that keeps its cluster (QEMU's ZERO_ALLOC), or an extended entry's cluster.
    let hostCluster: UInt64?

    /// Encodes a standard L2 entry (qcow2 spec, "Standard Cluster Descriptor"): host offset,
    /// bit 0 for "reads as zeros", bit 63 when the refcount is one.
    static func encode(host: UInt64, zero: Bool, copied: Bool) -> UInt64 {
        host | (zero ? Qcow2.zeroFlag : 0) | (copied && host != 0 ? Qcow2.copiedFlag : 0)
    }

    /// Encodes the bitmap word of an extended L2 entry (qcow2 spec, "Extended L2 Entries"):
    /// allocation bits 0-31, reads-as-zero bits 32-63.
    static func encodeBitmap(allocated: UInt32, zero: UInt32) -> UInt64 {
        UInt64(allocated) | UInt64(zero) << 32
    }

    /// Decodes `word` (and `bitmap`, the second word of an extended entry).
    /// - Parameter externalData: with an external data file, host offset 0 with bit 63 set is valid.
    init(word: UInt64, bitmap: UInt64, geometry g: Qcow2Geometry, externalData: Bool) throws(Qcow2FormatError) {
        if word & Qcow2.compressedFlag != 0 {
            guard !externalData else { throw .init("compressed cluster in an image with an external data file") }
            // qcow2 spec, "Extended L2 Entries": the bitmap of a compressed cluster is reserved and
            // must be zero (QEMU's qcow2_get_subcluster_type calls anything else invalid).
            if g.extendedL2, bitmap != 0 {
                throw .init("compressed cluster with a non-zero subcluster bitmap (0x\(String(bitmap, radix: 16)))")
            }
            kind = .compressed(Qcow2CompressedDescriptor(entry: word, geometry: g))
            copied = false
            hostCluster = nil
            return
        }
        let host = word & Qcow2.offsetMask
        let allocated = host != 0 || (externalData && word & Qcow2.copiedFlag != 0)
        copied = word & Qcow2.copiedFlag != 0
        hostCluster = allocated ? host : nil
        if allocated, !g.isClusterAligned(host) {
            throw .init("host cluster offset 0x\(String(host, radix: 16)) is not aligned to the cluster size")
        }
        if g.extendedL2 {
            let alloc = UInt32(truncatingIfNeeded: bitmap), zero = UInt32(truncatingIfNeeded: bitmap >> 32)
            if alloc & zero != 0 {
                throw .init("subclusters are both allocated and zero (bitmap 0x\(String(bitmap, radix: 16)))")
            }
            if !allocated, alloc != 0 {
                throw .init("subclusters marked allocated in an unallocated cluster (bitmap 0x\(String(bitmap, radix: 16)))")
            }
            kind = .subclusters(host: allocated ? host : nil, allocated: alloc, zero: zero)
        } else if word & Qcow2.zeroFlag != 0 {
            kind = .zero
        } else {
            kind = allocated ? .data(host: host) : .unallocated
        }
    }

    /// What subcluster `index` reads as (the whole cluster when there are no subclusters).
    func unit(_ index: Int, geometry g: Qcow2Geometry) -> Unit {
        switch kind {
        case .unallocated: return .unallocated
        case .zero: return .zero
        case .data(let host): return .data(host: host)
        case .compressed(let d): return .compressed(d)
        case let .subclusters(host, allocated, zero):
            let bit = UInt32(1) << UInt32(index)
            if allocated & bit != 0, let host { return .data(host: host + UInt64(index << g.subclusterBits)) }
            if zero & bit != 0 { return .zero }
            return .unallocated
        }
    }
}

/// A problem with on-disk bytes, found by a pure decoder; callers add path, offset and structure.
package struct Qcow2FormatError: Error, Sendable, CustomStringConvertible {
    package let reason: String
    init(_ reason: String) { self.reason = reason }
    package var description: String { reason }
}

/// Big-endian field access over a byte array (qcow2 spec, "General": "All numbers in qcow2 are
/// stored in Big Endian byte order"). Callers check bounds before asking.
struct Qcow2Bytes {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
    func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(bytes[at + $1]) } }
    func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(bytes[at + $1]) } }

    /// A 64-bit big-endian word from raw memory (table entries).
    @inline(__always)
    static func u64(_ raw: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// Text up to the first NUL (feature names are zero-padded; other strings are not terminated).
    static func string(_ data: [UInt8]) -> String {
        let end = data.firstIndex(of: 0) ?? data.count
        return String(decoding: data[..<end], as: UTF8.self)
    }
}
