/// VMDK on-disk layouts and limits, pure (no I/O). The layout is VMware's "Virtual Disk Format
/// 1.1" (hosted sparse extent header, grain directory/tables, stream-optimized markers), as
/// QEMU's block/vmdk.c reads it.
enum VmdkFormat {
    static let sectorSize: UInt64 = 512
    /// "KDMV" little-endian at byte 0: a hosted sparse extent (VMDK4 header).
    static let sparseMagic: UInt32 = 0x564D_444B
    /// "COWD": the ESX 2 sparse extent (VMDK3), recognised but not read.
    static let cowdMagic: UInt32 = 0x4457_4F43
    /// Grain directory at the end (stream-optimized): the footer holds the real header.
    static let gdAtEnd: UInt64 = .max
    /// A grain table entry meaning "zeroed grain" when the header's zeroed-grain flag is set.
    static let zeroedGTE: UInt32 = 1
    /// compressAlgorithm 1: deflate (zlib streams, RFC 1950).
    static let compressionDeflate: UInt16 = 1
    /// Stream-optimized marker types (spec, "Stream-Optimized Compressed Sparse Extents").
    static let markerEndOfStream: UInt32 = 0, markerFooter: UInt32 = 3

    /// Header flags.
    static let flagRedundantGD: UInt32 = 1 << 1
    static let flagZeroedGrain: UInt32 = 1 << 2
    static let flagCompressed: UInt32 = 1 << 16
    static let flagMarkers: UInt32 = 1 << 17

    /// Limits. QEMU refuses more than 512 entries per grain table; grains above 2 MiB (QEMU
    /// allows 1 GiB) would make one cached grain too large for our memory budget; the grain
    /// directory is loaded whole, so it is capped at 1 Mi entries (4 MiB), which still maps
    /// 2 TiB (the format's limit) with 4 KiB grains.
    static let maxGTEsPerGT: UInt32 = 512
    static let maxGrainSectors: UInt64 = 4096
    static let maxGDEntries: UInt64 = 1 << 20
    /// Bytes of descriptor text read: QEMU reads at most 1 MiB - 1.
    static let maxDescriptorBytes: UInt64 = (1 << 20) - 1
    /// Extents in one descriptor (a 2 TiB twoGbMaxExtent disk has 1024).
    static let maxExtents = 4096

    /// Whether `header` (a file's first bytes) is a VMDK: the sparse magic, or a descriptor
    /// whose first non-comment, non-blank line is "version=1|2|3" (QEMU's vmdk_probe).
    static func probe(_ header: [UInt8]) -> Bool {
        if header.count >= 4 {
            let magic = LittleEndianBytes(Array(header[0..<4])).u32(0)
            if magic == sparseMagic || magic == cowdMagic { return true }
        }
        var i = 0
        let n = header.count
        while i < n {
            if header[i] == UInt8(ascii: "#") {
                while i < n, header[i] != UInt8(ascii: "\n") { i += 1 }
                i += 1
                continue
            }
            if header[i] == UInt8(ascii: " ") {
                while i < n, header[i] == UInt8(ascii: " ") { i += 1 }
                if i < n, header[i] == UInt8(ascii: "\r") { i += 1 }
                guard i < n, header[i] == UInt8(ascii: "\n") else { return false }
                i += 1
                continue
            }
            for version in ["1", "2", "3"] {
                for end in ["\n", "\r\n"] {
                    let want = Array("version=\(version)\(end)".utf8)
                    if n - i >= want.count, Array(header[i ..< i + want.count]) == want { return true }
                }
            }
            return false
        }
        return false
    }
}

/// The hosted sparse extent header (spec, "Header": SparseExtentHeader, 512 bytes at sector 0,
/// or in the footer of a stream-optimized extent).
struct VmdkSparseHeader: Equatable {
    var version: UInt32
    var flags: UInt32
    /// Sectors.
    var capacity: UInt64
    var granularity: UInt64
    var descriptorOffset: UInt64
    var descriptorSize: UInt64
    var gtesPerGT: UInt32
    var redundantGDOffset: UInt64
    var gdOffset: UInt64
    var grainOffset: UInt64
    var compressAlgorithm: UInt16

    /// Decodes the 512 bytes at `bytes` (magic at 0).
    init(_ bytes: [UInt8]) throws(VmdkFormatError) {
        guard bytes.count >= 79 else { throw .init("header is truncated") }
        let b = LittleEndianBytes(bytes)
        guard b.u32(0) == VmdkFormat.sparseMagic else { throw .init("bad sparse extent magic") }
        version = b.u32(4)
        flags = b.u32(8)
        capacity = b.u64(12)
        granularity = b.u64(20)
        descriptorOffset = b.u64(28)
        descriptorSize = b.u64(36)
        gtesPerGT = b.u32(44)
        redundantGDOffset = b.u64(48)
        gdOffset = b.u64(56)
        grainOffset = b.u64(64)
        compressAlgorithm = b.u16(77)
    }

    var compressed: Bool { compressAlgorithm == VmdkFormat.compressionDeflate }
    var hasMarkers: Bool { flags & VmdkFormat.flagMarkers != 0 }
    var hasZeroedGrain: Bool { flags & VmdkFormat.flagZeroedGrain != 0 }
}

/// What is wrong with a VMDK structure, before the opener adds path and offset.
struct VmdkFormatError: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
