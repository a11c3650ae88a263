import SystemPackage

/// What a VMDK file says about itself, read without opening any other file: its descriptor
/// (standalone or embedded) and, for a monolithic sparse or stream-optimized file, its own
/// sparse extent. QEMU's vmdk_open / vmdk_open_vmdk4 / vmdk_open_desc_file.
struct VmdkMetadata: Sendable {
    var descriptor: VmdkDescriptor
    /// As qemu-img info shows it: the descriptor's createType, or monolithicSparse /
    /// streamOptimized for a sparse file, which QEMU names from its header.
    var createType: String
    /// The file's own extent when it is a hosted sparse extent.
    var embeddedSparse: VmdkSparseExtent?
    var cid: UInt32
    var parentCID: UInt32
    /// Where the descriptor text was read in the file, and how many bytes of it (the range a
    /// writer rewrites the CID in).
    var descriptorOffset: UInt64 = 0
    var descriptorLength = 0

    /// Create types a standalone descriptor may declare (QEMU's vmdk_open_desc_file; the
    /// sparse ones whose extents QEMU cannot read are refused when an extent is opened).
    static let descriptorCreateTypes: Set<String> = ["monolithicFlat", "vmfs", "vmfsSparse", "seSparse",
                                                     "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]

    static func read(from file: any BlockDevice) throws -> VmdkMetadata {
        func fail(_ offset: UInt64, _ structure: String, _ reason: String, _ errno: Errno = .ioError) -> ImageError {
            ImageError(path: file.displayName, offset: offset, structure: structure, reason: reason, errno: errno)
        }
        guard file.size >= 4 else { throw fail(0, "VMDK header", "file too small to be a VMDK image") }
        let magic = LittleEndianBytes(try file.readBytes(at: 0, count: 4)).u32(0)
        if magic == VmdkFormat.cowdMagic {
            throw fail(0, "VMDK header", "VMDK3 (COWD) sparse extents are not supported", .notSupported)
        }
        var descriptorAt: UInt64 = 0
        var descriptorLimit = VmdkFormat.maxDescriptorBytes
        var sparse: VmdkSparseExtent?
        var createType: String?
        if magic == VmdkFormat.sparseMagic {
            let header: VmdkSparseHeader
            let first = try file.readBytes(at: 0, count: Int(min(file.size, 512)))
            do { header = try VmdkSparseHeader(first) } catch let e {
                throw fail(0, "VMDK header", e.reason)
            }
            if header.capacity == 0, header.descriptorOffset != 0 {
                // QEMU: a sparse header of capacity 0 only points at a descriptor to follow.
                descriptorAt = header.descriptorOffset.saturatingMultiply(VmdkFormat.sectorSize)
            } else {
                let extent = try VmdkSparseExtent(file: file)
                sparse = extent
                createType = extent.header.compressed ? "streamOptimized" : "monolithicSparse"
                descriptorAt = extent.header.descriptorOffset.saturatingMultiply(VmdkFormat.sectorSize)
                descriptorLimit = min(descriptorLimit, extent.header.descriptorSize.saturatingMultiply(VmdkFormat.sectorSize))
                if extent.header.descriptorOffset == 0 { descriptorLimit = 0 }
            }
        }
        let count = descriptorAt < file.size ? Int(min(file.size - descriptorAt, descriptorLimit)) : 0
        let text = try file.readBytes(at: descriptorAt, count: count)
        let descriptor: VmdkDescriptor
        do { descriptor = try VmdkDescriptor(text) } catch let e {
            throw fail(descriptorAt, "VMDK descriptor", e.reason)
        }
        if sparse == nil {
            guard let declared = descriptor.createType else { throw fail(descriptorAt, "VMDK descriptor", "invalid VMDK image descriptor (no createType)") }
            guard descriptorCreateTypes.contains(declared) else {
                throw fail(descriptorAt, "VMDK descriptor", "unsupported image type '\(GuestName.display(Array(declared.utf8)))'", .notSupported)
            }
            guard !descriptor.extents.isEmpty else { throw fail(descriptorAt, "VMDK descriptor", "descriptor lists no extents") }
            createType = declared
        }
        guard let cid = descriptor.cid, let parentCID = descriptor.parentCID else {
            throw fail(descriptorAt, "VMDK descriptor", "descriptor has no CID or parentCID")
        }
        return VmdkMetadata(descriptor: descriptor, createType: createType ?? "monolithicSparse", embeddedSparse: sparse,
                            cid: cid, parentCID: parentCID, descriptorOffset: descriptorAt, descriptorLength: count)
    }
}
