extension VmdkImage {
    /// vmdk: the sparse magic "KDMV" (or "COWD") at byte 0, or a text descriptor (QEMU's
    /// vmdk_probe). Opened read-only with its extents and parent chain.
    static let formatDriver = ImageFormatDriver(
        format: .vmdk, hasSnapshots: false,
        probe: { VmdkFormat.probe($0) },
        describe: { file in try describe(file) },
        check: { device in (device as? VmdkImage)?.check() }
    ) { file, options, openBacking in
        try VmdkImage(file: file, options: options, openBacking: openBacking)
    }

    /// qemu-img info's fields for a VMDK (block/vmdk.c vmdk_get_specific_info and
    /// vmdk_get_extent_info, fields in their order). The extents of a standalone descriptor are
    /// sized from their headers only when the descriptor's own name says it is a VMDK (the
    /// probing policy: a probed file does not make us read other files).
    static func describe(_ file: any ImageSource) throws -> ImageDescription {
        let m = try VmdkMetadata.read(from: file)
        typealias F = FormatSpecificInfo.Field
        var extents: [[F]] = []
        var total: UInt64 = 0
        var clusterSize: Int?
        if let sparse = m.embeddedSparse {
            var fields: [F] = []
            if sparse.header.compressed { fields.append(F("compressed", .bool(true))) }
            fields += [F("virtual size", .integer(Int64(sparse.size))), F("filename", .string(file.displayName)),
                       F("cluster size", .integer(Int64(sparse.grainBytes))), F("format", .string(""))]
            extents.append(fields)
            total = sparse.size
            clusterSize = Int(sparse.grainBytes)
        } else {
            let mayRead = ImageOpener.formatIsVouched(path: file.displayName, given: nil, probed: .vmdk)
            for extent in m.descriptor.extents {
                let resolved = ImageOpener.resolve(extent.file, relativeTo: file.displayName)
                var size = extent.sectors.saturatingMultiply(VmdkFormat.sectorSize)
                var fields: [F] = []
                var grain: UInt64?
                if extent.kind == .sparse, mayRead, let extentFile = try? RawImage(path: resolved, writable: false),
                   let header = try? VmdkSparseHeader(extentFile.readBytes(at: 0, count: Int(min(extentFile.size, 512)))) {
                    if header.compressed { fields.append(F("compressed", .bool(true))) }
                    size = header.capacity.saturatingMultiply(VmdkFormat.sectorSize)
                    grain = header.granularity.saturatingMultiply(VmdkFormat.sectorSize)
                }
                fields += [F("virtual size", .integer(Int64(clamping: size))), F("filename", .string(resolved))]
                if let grain {
                    fields.append(F("cluster size", .integer(Int64(clamping: grain))))
                    // qemu-img shows the first extent's grain (vmdk_get_info): none when it is flat.
                    if extents.isEmpty { clusterSize = Int(clamping: grain) }
                }
                fields.append(F("format", .string(extent.kind.rawValue)))
                extents.append(fields)
                total = total.saturatingAdd(size)
            }
        }
        var d = ImageDescription(virtualSize: total, clusterSize: clusterSize)
        if let hint = m.descriptor.parentFileNameHint {
            d.backingFilename = hint
            d.backingFormat = "vmdk"
        }
        d.specific = FormatSpecificInfo(type: "vmdk", fields: [
            F("cid", .integer(Int64(m.cid))), F("parent cid", .integer(Int64(m.parentCID))),
            F("create type", .string(m.createType)), F("extents", .list(extents)),
        ])
        return d
    }
}
