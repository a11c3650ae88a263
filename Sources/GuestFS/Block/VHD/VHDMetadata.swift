import SystemPackage

/// The parsed and checked footer and dynamic header of a VHD file (QEMU's vpc_open up to the
/// BAT): enough for `info`; `VHDImage` loads the BAT on top.
struct VHDMetadata: Sendable {
    enum Layout: Sendable {
        /// The disk is the file's first `size` bytes; the footer follows them.
        case fixed
        /// Blocks through a BAT; `parentLocators` are set for a differencing disk.
        case dynamic(tableOffset: UInt64, maxTableEntries: UInt32, blockSize: UInt32, bitmapSize: UInt64)
    }

    let footer: VHDFormat.Footer
    let layout: Layout
    let virtualSize: UInt64
    let diskType: VHDFormat.DiskType
    let dynamicHeader: VHDFormat.DynamicHeader?
    let fileSize: UInt64

    static let footerStructure = "VHD footer"
    static let headerStructure = "VHD dynamic disk header"

    /// Reads the footer (the copy at 0, or the one in the last sector of a fixed disk) and the
    /// dynamic disk header, checking them as QEMU does.
    static func read(from file: any BlockDevice) throws -> VHDMetadata {
        let path = file.displayName
        func bad(_ structure: String, _ offset: UInt64, _ reason: String, errno: Errno = .ioError) -> ImageError {
            ImageError(path: path, offset: offset, structure: structure, reason: reason, errno: errno)
        }
        let fileSize = file.size
        guard fileSize >= UInt64(VHDFormat.footerSize) else {
            throw bad(footerStructure, 0, "file of \(fileSize) bytes is too small for a VHD footer")
        }
        var footerOffset: UInt64 = 0
        var raw = try file.readBytes(at: 0, count: VHDFormat.footerSize)
        var fixedByPlace = false
        if !VHDFormat.probe(raw) {
            // A fixed disk has its footer only at the end ("Hard Disk Footer Format").
            footerOffset = fileSize - UInt64(VHDFormat.footerSize)
            raw = try file.readBytes(at: footerOffset, count: VHDFormat.footerSize)
            guard VHDFormat.probe(raw) else {
                throw bad(footerStructure, footerOffset, "no \"conectix\" cookie at the start or the end: not a VHD image", errno: .invalidArgument)
            }
            fixedByPlace = true
        }
        let footer = VHDFormat.Footer(raw)
        guard footer.checksum == footer.computedChecksum else {
            throw bad(footerStructure, footerOffset + 64,
                      "checksum 0x\(String(footer.checksum, radix: 16)) does not match the footer's (0x\(String(footer.computedChecksum, radix: 16)))",
                      errno: .invalidArgument)
        }
        let virtualSize = footer.virtualSize
        guard virtualSize / VHDFormat.sectorSize <= VHDFormat.maxSectors else {
            throw bad(footerStructure, footerOffset + 48, "virtual size \(virtualSize) is above the 2040 GiB QEMU allows", errno: .fileTooLarge)
        }
        // QEMU decides fixed by where the footer was found, then reads by the footer's type.
        if fixedByPlace {
            return VHDMetadata(footer: footer, layout: .fixed, virtualSize: virtualSize, diskType: .fixed,
                               dynamicHeader: nil, fileSize: fileSize)
        }
        guard let type = VHDFormat.DiskType(rawValue: footer.diskType) else {
            throw bad(footerStructure, 60, "disk type \(footer.diskType) is not fixed (2), dynamic (3) or differencing (4)", errno: .notSupported)
        }
        if type == .fixed {
            // QEMU takes a footer at byte 0 for a dynamic disk's copy and fails on the header.
            throw bad(footerStructure, 60, "a footer at byte 0 says the disk is fixed; a fixed disk's footer is only at the end",
                      errno: .invalidArgument)
        }
        let headerOffset = footer.dataOffset
        let (headerEnd, overflow) = headerOffset.addingReportingOverflow(UInt64(VHDFormat.dynamicHeaderSize))
        guard !overflow, headerEnd <= fileSize else {
            throw bad(footerStructure, 16, "data offset 0x\(String(headerOffset, radix: 16)) of the dynamic disk header is outside the file")
        }
        let headerRaw = try file.readBytes(at: headerOffset, count: VHDFormat.dynamicHeaderSize)
        guard Array(headerRaw[0 ..< 8]) == VHDFormat.dynamicCookie else {
            throw bad(headerStructure, headerOffset, "no \"cxsparse\" cookie", errno: .invalidArgument)
        }
        let header = VHDFormat.DynamicHeader(headerRaw)
        let blockSize = header.blockSize
        guard blockSize >= 512, blockSize & (blockSize - 1) == 0 else {
            throw bad(headerStructure, headerOffset + 32, "block size \(blockSize) is not a power of two of at least 512", errno: .invalidArgument)
        }
        let computed = UInt64(header.maxTableEntries).multipliedReportingOverflow(by: UInt64(blockSize))
        guard !computed.overflow, computed.partialValue >= virtualSize else {
            throw bad(headerStructure, headerOffset + 28,
                      "\(header.maxTableEntries) table entries of \(blockSize) bytes do not cover the virtual size \(virtualSize)",
                      errno: .invalidArgument)
        }
        let needed = (virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize)
        guard needed <= VHDFormat.maxTableEntries else {
            throw bad(headerStructure, headerOffset + 28,
                      "\(needed) blocks of \(blockSize) bytes need a BAT larger than imagemount's limit of \(VHDFormat.maxTableEntries) entries",
                      errno: .fileTooLarge)
        }
        let batLength = needed * 4
        let (batEnd, batOverflow) = header.tableOffset.addingReportingOverflow(batLength)
        guard !batOverflow, batEnd <= fileSize else {
            throw bad(headerStructure, headerOffset + 16, "BAT at 0x\(String(header.tableOffset, radix: 16)) (\(batLength) bytes) runs past the end of the file")
        }
        return VHDMetadata(footer: footer,
                           layout: .dynamic(tableOffset: header.tableOffset, maxTableEntries: header.maxTableEntries,
                                            blockSize: blockSize, bitmapSize: header.bitmapSize),
                           virtualSize: virtualSize, diskType: type, dynamicHeader: header, fileSize: fileSize)
    }
}
