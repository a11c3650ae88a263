import SystemPackage

/// QED on-disk layout (QEMU's docs/interop/qed_spec.txt and block/qed.h): a little-endian
/// 64-byte header in the first `header_size` clusters, an L1 table and L2 tables of
/// `table_size` clusters each holding 64-bit cluster offsets; 0 is an unallocated cluster
/// (read from the backing file), 1 a zero cluster. Decoding and checks only, no I/O.
enum QEDFormat {
    static let headerSize = 64
    /// "QED\0" read little-endian (QED_MAGIC).
    static let magic: UInt32 = 0x0044_4551
    /// Feature bits (QED_F_*): a backing file; the image needs a consistency check (it was not
    /// closed cleanly); the backing file is raw and must not be probed.
    static let backingFile: UInt64 = 0x01
    static let needCheck: UInt64 = 0x02
    static let backingFormatNoProbe: UInt64 = 0x04
    static let knownFeatures: UInt64 = backingFile | needCheck | backingFormatNoProbe
    /// QED_MIN/MAX_CLUSTER_SIZE and QED_MIN/MAX_TABLE_SIZE (table size in clusters).
    static let clusterSizes: ClosedRange<UInt32> = 4096 ... 64 << 20
    static let tableSizes: ClosedRange<UInt32> = 1 ... 16
    /// QEMU reads the backing name into a 4096-byte buffer and refuses names that do not fit it
    /// with their NUL (qed_read_string).
    static let maxBackingNameBytes: UInt32 = 4095
    /// L2 entries: unallocated and zero clusters.
    static let unallocated: UInt64 = 0
    static let zeroCluster: UInt64 = 1
    /// Most L1 entries imagemount keeps in memory (32 MiB): the part of the L1 table the image
    /// size reaches, not the whole table, which can be 1 GiB (16 clusters of 64 MiB).
    static let maxL1Entries: UInt64 = 4 << 20

    static let structure = "QED header"

    /// QEMU's bdrv_qed_probe: a whole header starting with the magic.
    static func probe(_ bytes: [UInt8]) -> Bool {
        bytes.count >= headerSize && LittleEndianBytes(bytes).u32(0) == magic
    }

    struct Header {
        var magic: UInt32
        var clusterSize: UInt32
        var tableSize: UInt32
        var headerClusters: UInt32
        var features: UInt64
        var compatFeatures: UInt64
        var autoclearFeatures: UInt64
        var l1TableOffset: UInt64
        var imageSize: UInt64
        var backingNameOffset: UInt32
        var backingNameSize: UInt32

        init(_ raw: [UInt8]) {
            let b = LittleEndianBytes(raw)
            magic = b.u32(0)
            clusterSize = b.u32(4)
            tableSize = b.u32(8)
            headerClusters = b.u32(12)
            features = b.u64(16)
            compatFeatures = b.u64(24)
            autoclearFeatures = b.u64(32)
            l1TableOffset = b.u64(40)
            imageSize = b.u64(48)
            backingNameOffset = b.u32(56)
            backingNameSize = b.u32(60)
        }

        /// Entries of one table (L1 or L2): table_size clusters of 8-byte entries.
        var tableEntries: UInt64 { UInt64(tableSize) * UInt64(clusterSize) / 8 }
        var tableBytes: UInt64 { UInt64(tableSize) * UInt64(clusterSize) }
        /// Guest bytes one L1 entry maps.
        var l2Span: UInt64 { tableEntries * UInt64(clusterSize) }
        var headerBytes: UInt64 { UInt64(headerClusters) * UInt64(clusterSize) }

        /// qed_check_cluster_offset: cluster-aligned, past the header, before the end of the file
        /// (`fileSize` rounded down to a cluster, as bdrv_qed_do_open rounds it).
        func isValidCluster(_ offset: UInt64, fileSize: UInt64) -> Bool {
            offset % UInt64(clusterSize) == 0 && offset >= headerBytes && offset < fileSize
        }

        /// qed_check_table_offset: the table's first and last clusters are valid. QEMU refuses a
        /// last cluster equal to the first (`end_offset <= offset`), so images with table_size=1
        /// do not open in QEMU 7.2 ("QED table offset is invalid"); imagemount refuses them too,
        /// so both tools read the same images.
        func isValidTable(_ offset: UInt64, fileSize: UInt64) -> Bool {
            let (end, overflow) = offset.addingReportingOverflow(UInt64(tableSize - 1) * UInt64(clusterSize))
            return !overflow && end > offset && isValidCluster(offset, fileSize: fileSize) && isValidCluster(end, fileSize: fileSize)
        }

        /// bdrv_qed_do_open's checks, in its order; returns the L1 entries the image size reaches.
        /// `fileSize` is the file's length rounded down to a cluster.
        func validated(path: String, fileSize rawFileSize: UInt64) throws -> (fileSize: UInt64, l1Entries: Int) {
            func bad(_ at: UInt64, _ reason: String, _ errno: Errno = .invalidArgument) -> ImageError {
                ImageError(path: path, offset: at, structure: QEDFormat.structure, reason: reason, errno: errno)
            }
            guard magic == QEDFormat.magic else { throw bad(0, "bad magic, not a QED image") }
            guard features & ~QEDFormat.knownFeatures == 0 else {
                throw bad(16, "unsupported QED features: \(String(features & ~QEDFormat.knownFeatures, radix: 16))", .notSupported)
            }
            guard QEDFormat.clusterSizes.contains(clusterSize), clusterSize.nonzeroBitCount == 1 else {
                throw bad(4, "cluster size \(clusterSize) is invalid (a power of 2 from 4 KiB to 64 MiB)")
            }
            let fileSize = rawFileSize / UInt64(clusterSize) * UInt64(clusterSize)
            guard QEDFormat.tableSizes.contains(tableSize), tableSize.nonzeroBitCount == 1 else {
                throw bad(8, "table size \(tableSize) is invalid (a power of 2 from 1 to 16 clusters)")
            }
            // qed_is_image_size_valid: whole sectors, at most what the two levels map.
            let maxSize = tableEntries.saturatingMultiply(l2Span)
            guard imageSize % 512 == 0, imageSize <= maxSize else {
                throw bad(48, "image size \(imageSize) is invalid (a multiple of 512 of at most \(maxSize) bytes)")
            }
            guard isValidTable(l1TableOffset, fileSize: fileSize) else {
                throw bad(40, "L1 table offset 0x\(String(l1TableOffset, radix: 16)) is invalid (table of \(tableBytes) bytes in a file of \(rawFileSize))")
            }
            guard UInt64(headerClusters) * UInt64(clusterSize) <= UInt64(UInt32.max) else {
                throw bad(12, "header size of \(headerClusters) clusters is too large")
            }
            if features & QEDFormat.backingFile != 0 {
                guard UInt64(backingNameOffset) + UInt64(backingNameSize) <= headerBytes else {
                    throw bad(56, "backing file name at \(backingNameOffset) (\(backingNameSize) bytes) lies outside the header")
                }
                guard backingNameSize <= QEDFormat.maxBackingNameBytes else {
                    throw bad(60, "backing file name of \(backingNameSize) bytes is too long")
                }
            }
            let entries = (imageSize + l2Span - 1) / l2Span
            guard entries <= QEDFormat.maxL1Entries else {
                throw bad(48, "image size \(imageSize) needs \(entries) L1 entries, more than imagemount's limit of \(QEDFormat.maxL1Entries)",
                          .fileTooLarge)
            }
            return (fileSize, Int(entries))
        }
    }
}
