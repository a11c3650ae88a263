extension Qcow2Image {
    /// qcow2 (docs/interop/qcow2.txt): the magic "QFI\xfb" at byte 0 and a version of 2 or more
    /// ("Header"), as QEMU's qcow2_probe (version 1 is qcow's, Block/Qcow1); opened with its
    /// backing chain below it, internal snapshots, compression and encryption.
    static let formatDriver = ImageFormatDriver(
        format: .qcow2, hasSnapshots: true,
        probe: { header in
            header.count >= 8 && header[0] == 0x51 && header[1] == 0x46 && header[2] == 0x49 && header[3] == 0xFB
                && BigEndianBytes(header).u32(4) >= 2
        },
        describe: { file in try describe(Qcow2Metadata.read(from: file)) },
        check: { device in try (device as? Qcow2Image)?.check() }
    ) { file, options, openBacking in
        try Qcow2Image(file: file, options: options, openBacking: openBacking)
    }

    /// qemu-img info's fields for a qcow2 header (block/qcow2.c `qcow2_get_specific_info`,
    /// fields in its order; lazy refcounts, corrupt and extended l2 exist only from compat 1.1).
    static func describe(_ m: Qcow2Metadata) -> ImageDescription {
        let h = m.header
        var d = ImageDescription(virtualSize: h.size, clusterSize: m.geometry.clusterSize)
        d.encrypted = h.cryptMethod != 0
        d.dirty = h.incompatible.contains(.dirty)
        d.snapshots = m.snapshots.map {
            ImageSnapshot(id: $0.id, name: $0.name, vmStateSize: $0.vmStateSize, dateSeconds: $0.dateSeconds,
                          dateNanoseconds: $0.dateNanoseconds, vmClockNanoseconds: $0.vmClockNanoseconds, icount: $0.icount)
        }
        if let name = m.backingFile {
            d.backingFilename = name
            d.backingFormat = m.extensions.backingFormat
        }
        typealias F = FormatSpecificInfo.Field
        var fields: [F] = [F("compat", .string(h.compat)), F("compression type", .string(m.compressionType.name))]
        let v3 = h.compat != "0.10"
        if v3 { fields.append(F("lazy refcounts", .bool(h.compatible.contains(.lazyRefcounts)))) }
        fields.append(F("refcount bits", .integer(1 << Int64(h.refcountOrder))))
        if h.cryptMethod == 1 || h.cryptMethod == 2 {
            fields.append(F("encrypt", .object([F("format", .string(h.cryptMethod == 1 ? "aes" : "luks"))])))
        }
        if h.incompatible.contains(.externalDataFile), let file = m.extensions.externalDataFile {
            fields.append(F("data file", .string(file)))
            fields.append(F("data file raw", .bool(h.autoclear.contains(.rawExternalData))))
        }
        if v3 {
            fields.append(F("corrupt", .bool(h.incompatible.contains(.corrupt))))
            fields.append(F("extended l2", .bool(h.incompatible.contains(.extendedL2))))
        }
        d.specific = FormatSpecificInfo(type: "qcow2", fields: fields)
        return d
    }
}
