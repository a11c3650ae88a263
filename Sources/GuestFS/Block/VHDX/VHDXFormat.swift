/// VHDX on-disk layouts ([MS-VHDX] v20160714, "2 Structures"; QEMU block/vhdx.h): the file
/// type identifier, the two headers, the region table, the metadata table and items, BAT
/// entries. Little-endian throughout; decoding and checksums only, no I/O.
enum VHDXFormat {
    static let kib: UInt64 = 1024
    static let mib: UInt64 = 1024 * 1024
    /// "2.1 File Type Identifier": "vhdxfile" at byte 0.
    static let fileSignature = Array("vhdxfile".utf8)
    /// "2.2 Headers": two 4 KiB headers at 64 KiB and 128 KiB, signature "head".
    static let headerOffsets: [UInt64] = [64 * kib, 128 * kib]
    static let headerSize = 4096
    static let headerSignature = Array("head".utf8)
    /// "2.2.3 Region Table": at 192 KiB (copy at 256 KiB), 64 KiB, signature "regi", at most 2047 entries.
    static let regionTableOffsets: [UInt64] = [192 * kib, 256 * kib]
    static let regionTableSize = 64 * 1024
    static let regionSignature = Array("regi".utf8)
    static let maxRegionEntries: UInt32 = 2047
    /// "2.6 Metadata Region": table signature "metadata", at most 2047 entries, in its first 64 KiB.
    static let metadataSignature = Array("metadata".utf8)
    static let metadataTableSize = 64 * 1024
    static let maxMetadataEntries: UInt16 = 2047
    /// Block sizes [MS-VHDX] allows ("2.6.2.1 File Parameters"): 1 MiB to 256 MiB, powers of two.
    static let minBlockSize: UInt32 = 1 << 20
    static let maxBlockSize: UInt32 = 256 << 20
    /// The largest virtual disk [MS-VHDX] allows: 64 TiB ("2.6.2.2 Virtual Disk Size").
    static let maxVirtualSize: UInt64 = 64 << 40
    /// Most BAT entries imagemount keeps in memory (64 MiB of table would be too many: 4 M entries, 32 MiB).
    static let maxBATEntries: UInt64 = 4 << 20

    /// Region and metadata item GUIDs, in their on-disk byte order (the first three fields little-endian).
    static func guid(_ text: String) -> [UInt8] {
        let hex = Array(text.filter { $0 != "-" }.utf8)
        func byte(_ i: Int) -> UInt8 {
            func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
            return nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1])
        }
        let b = (0 ..< 16).map(byte)
        return [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]] + Array(b[8...])
    }
    static let batRegion = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
    static let metadataRegion = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
    static let fileParameters = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
    static let virtualDiskSize = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
    static let virtualDiskID = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
    static let logicalSectorSize = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
    static let physicalSectorSize = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
    static let parentLocator = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

    /// "2.5.1 BAT Entry" states of a payload block; 5 is the unmapped state of the 0.95 draft,
    /// which QEMU still reads as zeros (PAYLOAD_BLOCK_UNMAPPED_v095).
    enum PayloadState: UInt8 {
        case notPresent = 0, undefined = 1, zero = 2, unmapped = 3, unmappedV095 = 5, fullyPresent = 6, partiallyPresent = 7
    }
    /// "2.5.1 BAT Entry": the file offset in 1 MiB units above bit 20, the state in bits 0-2.
    static let batOffsetShift: UInt64 = 20
    static let batStateMask: UInt64 = 7

    /// The probe: "vhdxfile" at byte 0 (QEMU's vhdx_probe).
    static func probe(_ header: [UInt8]) -> Bool {
        header.count >= 8 && Array(header[0 ..< 8]) == fileSignature
    }

    /// CRC-32C (Castagnoli, reflected 0x82F63B78), as [MS-VHDX] "2.2.2 Header" checksums use it.
    static let crcTable: [UInt32] = (0 ..< 256).map { n in
        var c = UInt32(n)
        for _ in 0 ..< 8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The checksum of `bytes` with the 4-byte checksum field at `field` counted as zeros.
    static func crc32c(_ bytes: [UInt8], checksumAt field: Int) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        let table = crcTable
        for (i, b) in bytes.enumerated() {
            let v = (field ..< field + 4).contains(i) ? 0 : b
            crc = table[Int((crc ^ UInt32(v)) & 0xFF)] ^ (crc >> 8)
        }
        return ~crc
    }

    /// "2.2.2 Header".
    struct Header {
        /// The header's 4 KiB as read (the CRC-32C covers all of them).
        var raw: [UInt8]
        var sequenceNumber: UInt64
        var logGUIDIsNull: Bool
        /// The log GUID (bytes 48–63): entries of the active log carry it.
        var logGUID: [UInt8]
        var logVersion: UInt16
        var version: UInt16
        var logLength: UInt32
        var logOffset: UInt64
        var valid: Bool

        init(_ raw: [UInt8]) {
            self.raw = raw
            let b = LittleEndianBytes(raw)
            sequenceNumber = b.u64(8)
            logGUIDIsNull = b.isZero(48, 16)
            logGUID = b.slice(48, 16)
            logVersion = b.u16(64)
            version = b.u16(66)
            logLength = b.u32(68)
            logOffset = b.u64(72)
            valid = Array(raw[0 ..< 4]) == VHDXFormat.headerSignature && b.u32(4) == VHDXFormat.crc32c(raw, checksumAt: 4)
                && version == 1
        }
    }

    /// A new random GUID in its on-disk byte order: version 4 (random) in data3, variant 10 in
    /// data4 ([MS-VHDX] "2.2.2": FileWriteGuid, DataWriteGuid, LogGuid are fresh values).
    static func randomGUID() -> [UInt8] {
        var g = (0 ..< 16).map { _ in UInt8.random(in: 0 ... 255) }
        g[7] = g[7] & 0x0F | 0x40
        g[8] = g[8] & 0x3F | 0x80
        return g
    }
}
