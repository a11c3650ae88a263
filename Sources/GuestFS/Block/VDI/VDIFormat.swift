import SystemPackage

/// VDI on-disk layout (VirtualBox's VD format, version 1.1, as QEMU's block/vdi.c reads it):
/// a 512-byte header (little-endian), a block map of 32-bit entries at `offset_bmap`, and
/// blocks of `block_size` bytes from `offset_data` on. Decoding and checks only, no I/O.
enum VDIFormat {
    static let headerSize = 512
    /// The signature at byte 0x40 (QEMU's VDI_SIGNATURE).
    static let signature: UInt32 = 0xBEDA_107F
    /// Version 1.1, the only one QEMU opens.
    static let version11: UInt32 = 0x0001_0001
    static let sectorSize: UInt64 = 512
    /// The one block size QEMU opens (DEFAULT_CLUSTER_SIZE, 1 MiB).
    static let blockSize: UInt32 = 1 << 20
    /// QEMU's VDI_BLOCKS_IN_IMAGE_MAX.
    static let maxBlocksInImage: UInt32 = 0x3FFF_FFFF
    /// Block map entries: never allocated (arbitrary content, read as zeros) and discarded (zeros).
    static let unallocated: UInt32 = 0xFFFF_FFFF
    static let discarded: UInt32 = 0xFFFF_FFFE
    /// Most block map entries imagemount keeps in memory (32 MiB; 8 TiB of disk in 1 MiB blocks).
    static let maxMapEntries: UInt64 = 8 << 20

    static let structure = "VDI header"

    /// QEMU's vdi_probe: a whole header's bytes with the signature at 0x40.
    static func probe(_ header: [UInt8]) -> Bool {
        header.count >= headerSize && LittleEndianBytes(header).u32(0x40) == signature
    }

    enum ImageType: UInt32 { case dynamic = 1, fixed = 2 }

    /// The header fields QEMU uses ("VdiHeader" in block/vdi.c).
    struct Header {
        var signature: UInt32
        var version: UInt32
        var imageType: UInt32
        var offsetBlockMap: UInt32
        var offsetData: UInt32
        var sectorSize: UInt32
        var diskSize: UInt64
        var blockSize: UInt32
        var blocksInImage: UInt32
        var blocksAllocated: UInt32
        var linkUUIDIsNull: Bool
        var parentUUIDIsNull: Bool

        init(_ raw: [UInt8]) {
            let b = LittleEndianBytes(raw)
            signature = b.u32(0x40)
            version = b.u32(0x44)
            imageType = b.u32(0x4C)
            offsetBlockMap = b.u32(0x154)
            offsetData = b.u32(0x158)
            sectorSize = b.u32(0x168)
            diskSize = b.u64(0x170)
            blockSize = b.u32(0x178)
            blocksInImage = b.u32(0x180)
            blocksAllocated = b.u32(0x184)
            linkUUIDIsNull = b.isZero(0x1A8, 16)
            parentUUIDIsNull = b.isZero(0x1B8, 16)
        }

        /// The checks of QEMU's vdi_open, in its order, each with the offset of its field; the
        /// disk size rounded up to a sector as QEMU does ('VBoxManage convertfromraw' odd sizes).
        func validated(path: String) throws -> (diskSize: UInt64, mapEntries: Int) {
            func bad(_ at: UInt64, _ reason: String, _ errno: Errno = .notSupported) -> ImageError {
                ImageError(path: path, offset: at, structure: VDIFormat.structure, reason: reason, errno: errno)
            }
            let maxDiskSize = UInt64(VDIFormat.maxBlocksInImage) * UInt64(VDIFormat.blockSize)
            guard diskSize <= maxDiskSize else {
                throw bad(0x170, "disk size 0x\(String(diskSize, radix: 16)) is above the largest QEMU opens (0x\(String(maxDiskSize, radix: 16)))")
            }
            let size = (diskSize + VDIFormat.sectorSize - 1) / VDIFormat.sectorSize * VDIFormat.sectorSize
            guard signature == VDIFormat.signature else {
                throw bad(0x40, "bad signature \(String(signature, radix: 16)), not a VDI image", .invalidArgument)
            }
            guard version == VDIFormat.version11 else { throw bad(0x44, "unsupported version \(version >> 16).\(version & 0xFFFF)") }
            guard UInt64(offsetBlockMap) % VDIFormat.sectorSize == 0 else {
                throw bad(0x154, "block map offset 0x\(String(offsetBlockMap, radix: 16)) is not sector-aligned")
            }
            guard UInt64(offsetData) % VDIFormat.sectorSize == 0 else {
                throw bad(0x158, "data offset 0x\(String(offsetData, radix: 16)) is not sector-aligned")
            }
            guard UInt64(sectorSize) == VDIFormat.sectorSize else { throw bad(0x168, "sector size \(sectorSize) is not 512") }
            guard blockSize == VDIFormat.blockSize else { throw bad(0x178, "block size \(blockSize) is not 1048576") }
            guard size <= UInt64(blocksInImage) * UInt64(blockSize) else {
                throw bad(0x180, "disk size \(size) needs more than the \(blocksInImage) blocks of the block map")
            }
            guard linkUUIDIsNull else { throw bad(0x1A8, "non-null link UUID (differencing VDI images are not supported)") }
            guard parentUUIDIsNull else { throw bad(0x1B8, "non-null parent UUID (differencing VDI images are not supported)") }
            guard blocksInImage <= VDIFormat.maxBlocksInImage else {
                throw bad(0x180, "\(blocksInImage) blocks are more than QEMU's limit of \(VDIFormat.maxBlocksInImage)")
            }
            let entries = (size + UInt64(blockSize) - 1) / UInt64(blockSize)
            guard entries <= VDIFormat.maxMapEntries else {
                throw bad(0x170, "disk of \(size) bytes needs \(entries) block map entries, more than imagemount's limit of \(VDIFormat.maxMapEntries)",
                          .fileTooLarge)
            }
            return (size, Int(entries))
        }
    }
}
