import SystemPackage

/// The checked headers, region table and metadata items of a VHDX file (QEMU's vhdx_open up to
/// the BAT): enough for `info`; `VHDXImage` loads the BAT on top.
struct VHDXMetadata: Sendable {
    /// "2.2.2 Header": of the two, the valid header with the larger sequence number is current.
    static func currentHeader(of file: any BlockDevice) throws -> VHDXFormat.Header {
        try currentHeaderSlot(of: file).header
    }

    /// The current header and its slot (0: the copy at 64 KiB, 1: at 128 KiB); a writer
    /// updates the other slot first ("2.2.2.1 Updating the Headers").
    static func currentHeaderSlot(of file: any BlockDevice) throws -> (header: VHDXFormat.Header, slot: Int) {
        guard file.size >= 320 * VHDXFormat.kib else {
            throw ImageError(path: file.displayName, offset: 0, structure: "VHDX file identifier",
                             reason: "file of \(file.size) bytes is too small for VHDX headers and region tables", errno: .invalidArgument)
        }
        var current: (header: VHDXFormat.Header, slot: Int)?
        for (slot, at) in VHDXFormat.headerOffsets.enumerated() {
            let h = VHDXFormat.Header(try file.readBytes(at: at, count: VHDXFormat.headerSize))
            if h.valid, h.sequenceNumber >= (current?.header.sequenceNumber ?? 0) { current = (h, slot) }
        }
        guard let current else {
            throw ImageError(path: file.displayName, offset: VHDXFormat.headerOffsets[0], structure: "VHDX header",
                             reason: "neither header has a valid signature, version 1 and CRC-32C", errno: .invalidArgument)
        }
        return current
    }

    /// `file` as a reader must see it: with a dirty log's active sequence replayed in memory
    /// (VHDXLog.swift), else `file`; and whether a log was replayed.
    static func replayedView(of file: any BlockDevice) throws -> (device: any BlockDevice, replayed: Bool) {
        guard VHDXFormat.probe(try file.readBytes(at: 0, count: min(8, Int(min(file.size, 8))))) else { return (file, false) }
        let header = try currentHeader(of: file)
        guard !header.logGUIDIsNull else { return (file, false) }
        return (try VHDXLog.replayedView(of: file, header: header), true)
    }

    let virtualSize: UInt64
    let blockSize: UInt32
    let logicalSectorSize: UInt32
    let batOffset: UInt64
    let batLength: UInt32
    /// The metadata region (a writer's blocks must not overlap it).
    let metadataOffset: UInt64
    let metadataLength: UInt32
    /// Payload blocks per sector-bitmap block ("2.5 BAT", chunk ratio).
    let chunkRatio: UInt64
    let dataBlocks: UInt64

    /// Reads `file`'s metadata. A dirty log is an error unless `logReplayed` says `file` is
    /// already the replayed view (`VHDXLog.replayedView`), whose header still names the log.
    static func read(from file: any BlockDevice, logReplayed: Bool = false) throws -> VHDXMetadata {
        let path = file.displayName
        func bad(_ structure: String, _ offset: UInt64, _ reason: String, _ errno: Errno = .invalidArgument) -> ImageError {
            ImageError(path: path, offset: offset, structure: structure, reason: reason, errno: errno)
        }
        let fileSize = file.size
        guard fileSize >= 320 * VHDXFormat.kib else {
            throw bad("VHDX file identifier", 0, "file of \(fileSize) bytes is too small for VHDX headers and region tables")
        }
        guard VHDXFormat.probe(try file.readBytes(at: 0, count: 8)) else {
            throw bad("VHDX file identifier", 0, "no \"vhdxfile\" signature: not a VHDX image")
        }
        let header = try currentHeader(of: file)
        guard header.logGUIDIsNull || logReplayed else {
            throw bad("VHDX header", VHDXFormat.headerOffsets[0] + 48, "the log is dirty (log GUID set) and was not replayed", .notSupported)
        }

        // "2.2.3 Region Table": the first copy, else the second.
        var regions: (bat: (UInt64, UInt32), metadata: (UInt64, UInt32))?
        var regionError: ImageError?
        for at in VHDXFormat.regionTableOffsets where regions == nil {
            let raw = try file.readBytes(at: at, count: VHDXFormat.regionTableSize)
            let b = LittleEndianBytes(raw)
            guard Array(raw[0 ..< 4]) == VHDXFormat.regionSignature, b.u32(4) == VHDXFormat.crc32c(raw, checksumAt: 4) else {
                regionError = bad("VHDX region table", at, "bad signature or CRC-32C")
                continue
            }
            let count = b.u32(8)
            guard count <= VHDXFormat.maxRegionEntries else {
                regionError = bad("VHDX region table", at + 8, "\(count) entries are more than 2047")
                continue
            }
            var bat: (UInt64, UInt32)?, metadata: (UInt64, UInt32)?
            for i in 0 ..< Int(count) {
                let e = 16 + 32 * i
                let guid = b.slice(e, 16)
                let offset = b.u64(e + 16), length = b.u32(e + 24), required = b.u32(e + 28) & 1 != 0
                let (end, overflow) = offset.addingReportingOverflow(UInt64(length))
                guard !overflow, end <= fileSize, offset >= VHDXFormat.mib else {
                    throw bad("VHDX region table", at + UInt64(e), "region at 0x\(String(offset, radix: 16)) (\(length) bytes) is outside the file's data area")
                }
                if guid == VHDXFormat.batRegion { bat = (offset, length) }
                else if guid == VHDXFormat.metadataRegion { metadata = (offset, length) }
                else if required { throw bad("VHDX region table", at + UInt64(e), "unknown required region", .notSupported) }
            }
            guard let bat, let metadata else { throw bad("VHDX region table", at, "no BAT or no metadata region") }
            regions = (bat, metadata)
        }
        guard let regions else { throw regionError ?? bad("VHDX region table", VHDXFormat.regionTableOffsets[0], "unreadable") }

        // "2.6.1 Metadata Table".
        let (metaOffset, metaLength) = regions.metadata
        guard metaLength >= UInt32(VHDXFormat.metadataTableSize) else {
            throw bad("VHDX metadata region", metaOffset, "region of \(metaLength) bytes is smaller than its 64 KiB table")
        }
        let table = LittleEndianBytes(try file.readBytes(at: metaOffset, count: VHDXFormat.metadataTableSize))
        guard table.slice(0, 8) == VHDXFormat.metadataSignature else { throw bad("VHDX metadata table", metaOffset, "no \"metadata\" signature") }
        let entries = table.u16(10)
        guard entries <= VHDXFormat.maxMetadataEntries else { throw bad("VHDX metadata table", metaOffset + 10, "\(entries) entries are more than 2047") }
        var items: [[UInt8]: (offset: UInt64, length: UInt32, at: UInt64)] = [:]
        for i in 0 ..< Int(entries) {
            let e = 32 + 32 * i
            let guid = table.slice(e, 16), offset = table.u32(e + 16), length = table.u32(e + 20), flags = table.u32(e + 24)
            let at = metaOffset + UInt64(e)
            guard UInt64(offset) + UInt64(length) <= UInt64(metaLength), length <= 64 * 1024 else {
                throw bad("VHDX metadata table", at, "item at +0x\(String(offset, radix: 16)) (\(length) bytes) is outside the metadata region")
            }
            let known = [VHDXFormat.fileParameters, VHDXFormat.virtualDiskSize, VHDXFormat.virtualDiskID, VHDXFormat.logicalSectorSize,
                         VHDXFormat.physicalSectorSize, VHDXFormat.parentLocator].contains(guid)
            if !known, flags & 4 != 0 { throw bad("VHDX metadata table", at, "unknown required metadata item", .notSupported) }
            items[guid] = (metaOffset + UInt64(offset), length, at)
        }
        func at(_ guid: [UInt8]) -> UInt64 { items[guid]?.offset ?? metaOffset }
        func item(_ guid: [UInt8], _ name: String, size: Int) throws -> LittleEndianBytes {
            guard let i = items[guid] else { throw bad("VHDX metadata table", metaOffset, "no \(name) item") }
            guard i.length >= UInt32(size) else { throw bad("VHDX metadata table", i.at, "\(name) item of \(i.length) bytes is too short") }
            return LittleEndianBytes(try file.readBytes(at: i.offset, count: size))
        }
        let params = try item(VHDXFormat.fileParameters, "file parameters", size: 8)
        let blockSize = params.u32(0)
        guard blockSize >= VHDXFormat.minBlockSize, blockSize <= VHDXFormat.maxBlockSize, blockSize & (blockSize - 1) == 0 else {
            throw bad("VHDX file parameters", at(VHDXFormat.fileParameters), "block size \(blockSize) is not a power of two from 1 MiB to 256 MiB")
        }
        if params.u32(4) & 2 != 0 {
            throw bad("VHDX file parameters", at(VHDXFormat.fileParameters) + 4,
                      "differencing VHDX images (with a parent) are not supported yet (QEMU does not open them either)", .notSupported)
        }
        let size = try item(VHDXFormat.virtualDiskSize, "virtual disk size", size: 8).u64(0)
        let logical = try item(VHDXFormat.logicalSectorSize, "logical sector size", size: 4).u32(0)
        guard logical == 512 || logical == 4096 else {
            throw bad("VHDX logical sector size", at(VHDXFormat.logicalSectorSize), "logical sector size \(logical) is not 512 or 4096")
        }
        guard size <= VHDXFormat.maxVirtualSize, size % UInt64(logical) == 0 else {
            throw bad("VHDX virtual disk size", at(VHDXFormat.virtualDiskSize),
                      "virtual size \(size) is above 64 TiB or not a multiple of the \(logical)-byte sector")
        }
        // "2.5 BAT": chunk ratio = 2^23 * logical sector size / block size (at least 1 here).
        let chunkRatio = (UInt64(1) << 23) * UInt64(logical) / UInt64(blockSize)
        let dataBlocks = (size + UInt64(blockSize) - 1) / UInt64(blockSize)
        let batEntries = dataBlocks == 0 ? 0 : dataBlocks + (dataBlocks - 1) / chunkRatio
        guard batEntries <= VHDXFormat.maxBATEntries else {
            throw bad("VHDX BAT", regions.bat.0, "\(batEntries) BAT entries are more than imagemount's limit of \(VHDXFormat.maxBATEntries)", .fileTooLarge)
        }
        guard batEntries * 8 <= UInt64(regions.bat.1) else {
            throw bad("VHDX BAT", regions.bat.0, "region of \(regions.bat.1) bytes is too small for \(batEntries) entries")
        }
        return VHDXMetadata(virtualSize: size, blockSize: blockSize, logicalSectorSize: logical, batOffset: regions.bat.0,
                            batLength: regions.bat.1, metadataOffset: metaOffset, metadataLength: metaLength,
                            chunkRatio: chunkRatio, dataBlocks: dataBlocks)
    }
}
