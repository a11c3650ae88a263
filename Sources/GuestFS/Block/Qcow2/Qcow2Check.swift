/// Our own consistency check of a qcow2 image (QEMU's qcow2_check_refcounts): count the references
/// to every host cluster from the header, the L1 and L2 tables of the active state and of every
/// snapshot, the snapshot table and the refcount structures, then compare with the stored refcounts.
/// With `repair`, stored refcounts are set to the counted ones (as `qemu-img check -r all` would).
enum Qcow2Check {
    /// Most host clusters the check counts (two bytes each in memory): a larger file is refused.
    static let maxClusters: UInt64 = 1 << 26

    static func run(_ image: Qcow2Image, repair: Bool, sink: Qcow2MetadataSink?) throws -> ImageCheckResult {
        var walk = try Walk(image)
        try walk.countAll()
        if repair, let sink { try walk.repair(sink) } else { try walk.compare() }
        walk.checkCopiedFlags()
        return walk.result
    }

    private struct Walk {
        let image: Qcow2Image
        let g: Qcow2Geometry
        let cs: UInt64
        let fileSize: UInt64
        /// Clusters counted: those of the file, plus the one a last semi-allocated cluster may
        /// reach past its end (QEMU grows its in-memory table the same way).
        var clusterCount: UInt64
        var refs: [UInt16]
        var result = ImageCheckResult()
        /// COPIED flags of active L2 tables (L1 entries) and active data clusters, checked at the
        /// end against the stored refcounts, as QEMU's check_oflag_copied does.
        var copiedChecks: [(cluster: UInt64, copied: Bool, line: (UInt64) -> String)] = []

        /// Reserved bits of a standard L2 entry (QEMU's L2E_STD_RESERVED_MASK: bits 1-8, 56-61).
        static let l2StandardReservedMask: UInt64 = 0x3F00_0000_0000_01FE

        init(_ image: Qcow2Image) throws {
            self.image = image
            g = image.metadata.geometry
            cs = UInt64(g.clusterSize)
            fileSize = image.file.size
            clusterCount = (fileSize + cs - 1) / cs
            guard clusterCount <= Qcow2Check.maxClusters else {
                throw ImageError(path: image.path, structure: "check",
                                 reason: "the file has \(clusterCount) clusters, more than the \(Qcow2Check.maxClusters) a check counts",
                                 errno: .fileTooLarge)
            }
            refs = [UInt16](repeating: 0, count: Int(clusterCount))
            result.totalClusters = g.clusters(for: image.metadata.header.size)
        }

        mutating func corrupt(_ message: String) {
            result.corruptions += 1
            result.add(message: "ERROR \(message)")
        }

        /// A corruption whose whole line is QEMU's (its "ERROR:" forms have no space).
        mutating func corruptLine(_ line: String) {
            result.corruptions += 1
            result.add(message: line)
        }

        /// One more reference to every cluster of `[offset, offset + length)` (QEMU's
        /// qcow2_inc_refcounts_imrt: a region ending a cluster or more past the end of the file
        /// is a corruption and not counted; less than that is a semi-allocated last cluster).
        mutating func count(_ offset: UInt64, _ length: UInt64, _ what: String) {
            guard length > 0 else { return }
            // offset and length come from the image: a sum past 2^64 is past the end of the file too.
            let (end, overflow) = offset.addingReportingOverflow(length)
            if overflow || end > fileSize && end - fileSize >= cs {
                corruptLine("ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x\(hex(offset)) size 0x\(hex(length))")
                return
            }
            let first = offset / cs, last = (end - 1) / cs
            while last >= clusterCount {
                refs.append(0)
                clusterCount += 1
            }
            for c in first...last where refs[Int(c)] < .max { refs[Int(c)] += 1 }
        }

        mutating func countAll() throws {
            let h = image.metadata.header
            count(0, cs, "header")
            let activeL1 = image.map.l1
            count(h.l1TableOffset, UInt64(activeL1.count) * 8, "active L1 table")
            try countL1(activeL1, active: true)
            for s in image.metadata.snapshots {
                count(s.l1TableOffset, UInt64(s.l1Size) * 8, "L1 table of snapshot '\(s.name)'")
                guard UInt64(s.l1Size) * 8 <= UInt64(Qcow2.maxL1TableBytes), s.l1TableOffset <= fileSize, fileSize - s.l1TableOffset >= UInt64(s.l1Size) * 8 else {
                    corrupt("L1 table of snapshot '\(s.name)' at 0x\(hex(s.l1TableOffset)) is too large or past the end of the file")
                    continue
                }
                let raw = try image.file.readBytes(at: s.l1TableOffset, count: Int(s.l1Size) * 8)
                let l1 = raw.withUnsafeBytes { b in (0..<Int(s.l1Size)).map { Qcow2Bytes.u64(b, $0 * 8) } }
                try countL1(l1, active: false)
            }
            if h.nbSnapshots > 0 {
                let bytes = image.metadata.snapshots.reduce(UInt64(0)) { $0 + UInt64($1.tableEntryBytes) }
                count(h.snapshotsOffset, bytes, "snapshot table")
            }
            let (tableOffset, entries) = try image.refcounts.tableEntries()
            count(tableOffset, UInt64(entries.count) * 8, "refcount table")
            // The LUKS header of an encrypted image lies in clusters of its own (QEMU's
            // calculate_refcounts counts s->crypto_header too); the extension was bounds-checked
            // only when the key was used, so a bad pointer is a corruption here.
            if h.cryptMethod == Qcow2CryptMethod.luks.rawValue, let fde = image.metadata.extensions.encryptionHeader {
                if fde.length > fileSize || fde.offset > fileSize - fde.length {
                    corrupt("full disk encryption header (\(fde.length) bytes at 0x\(hex(fde.offset))) lies past the end of the file")
                } else {
                    count(fde.offset, fde.length, "full disk encryption header")
                }
            }
            if let b = image.metadata.extensions.bitmaps {
                result.checkErrors += 1
                result.add(message: "WARNING the \(b.nbBitmaps) persistent bitmaps are not checked; their clusters count as leaks")
            }
            // Refcount blocks last, as QEMU's check_refblocks: each must be referenced exactly once.
            for (i, e) in entries.enumerated() where e & Qcow2.offsetMask != 0 {
                let block = e & Qcow2.offsetMask
                if !g.isClusterAligned(block) {
                    corrupt("refcount block \(i) is not cluster aligned; refcount table entry corrupted")
                    continue
                }
                if block / cs >= clusterCount {
                    corrupt("refcount block \(i) is outside image")
                    continue
                }
                count(block, cs, "refcount block \(i)")
                if refs[Int(block / cs)] != 1 { corrupt("refcount block \(i) refcount=\(refs[Int(block / cs)])") }
            }
        }

        /// The L1 table's L2 tables and what they reference (QEMU's check_refcounts_l1 and
        /// check_refcounts_l2, with their messages and their effect on the counts).
        mutating func countL1(_ l1: [UInt64], active: Bool) throws {
            for (l1Index, entry) in l1.enumerated() {
                if entry & Qcow2.l1ReservedMask != 0 { corrupt("found L1 entry with reserved bits set: \(hex(entry))") }
                let table = entry & Qcow2.offsetMask
                if table == 0 { continue }
                count(table, cs, "L2 table")
                if !g.isClusterAligned(table) { corrupt("l2_offset=\(hex(table)): Table is not cluster aligned; L1 entry corrupted") }
                if active {
                    copiedChecks.append((table / cs, entry & Qcow2.copiedFlag != 0,
                                         { "ERROR OFLAG_COPIED L2 cluster: l1_index=\(l1Index) l1_entry=\(hex(entry)) refcount=\($0)" }))
                }
                // Past the end of the file the table reads as zeros, as QEMU's file driver reads it.
                var bytes = [UInt8](repeating: 0, count: Int(cs))
                try bytes.withUnsafeMutableBytes { try image.file.readPaddingPastEnd(into: $0, at: table) }
                try countL2(bytes, table: table, active: active)
            }
        }

        mutating func countL2(_ bytes: [UInt8], table: UInt64, active: Bool) throws {
            var nextContiguous: UInt64?   // fragmentation, as qemu-img check counts it: within one L2 table
            for i in 0..<g.l2Entries {
                let (word, bitmap) = bytes.withUnsafeBytes { b in
                    (Qcow2Bytes.u64(b, i * g.l2EntryBytes), g.extendedL2 ? Qcow2Bytes.u64(b, i * g.l2EntryBytes + 8) : 0)
                }
                let alloc = bitmap & 0xFFFF_FFFF, zero = bitmap >> 32
                if word & Qcow2.compressedFlag != 0 {
                    if word & Qcow2.copiedFlag != 0 {
                        corruptLine("ERROR: coffset=0x\(hex(word & g.compressedOffsetMask)): copied flag must never be set for compressed clusters")
                    }
                    // iotest 271: a compressed cluster's bitmap must be zero; it is then not counted.
                    if g.extendedL2, bitmap != 0 {
                        corrupt("compressed cluster \(i) with non-zero subcluster allocation bitmap, entry=0x\(hex(word))")
                        continue
                    }
                    let d = Qcow2CompressedDescriptor(entry: word & ~Qcow2.copiedFlag, geometry: g)
                    count(d.hostOffset, UInt64(max(d.length, 1)), "compressed cluster")
                    if active {
                        // QEMU counts every compressed cluster as fragmented too.
                        result.allocatedClusters += 1
                        result.compressedClusters += 1
                        result.fragmentedClusters += 1
                    }
                    continue
                }
                if word & Self.l2StandardReservedMask != 0 { corrupt("found l2 entry with reserved bits set: \(hex(word))") }
                let host = word & Qcow2.offsetMask
                let zeroFlag = !g.extendedL2 && word & Qcow2.zeroFlag != 0
                guard host != 0 else {
                    if g.extendedL2, alloc != 0 { corruptLine("ERROR: Unallocated cluster has non-zero subcluster allocation map") }
                    continue
                }
                if g.extendedL2, alloc & zero != 0 {
                    corrupt("offset=\(hex(host)): Allocated cluster has corrupted subcluster allocation bitmap")
                }
                if !g.isClusterAligned(host) {
                    let containsData = g.extendedL2 ? alloc != 0 : !zeroFlag
                    corrupt("offset=\(hex(host)): \(containsData ? "Data" : "Preallocated") cluster is not properly aligned; L2 entry corrupted.")
                }
                if active {
                    result.allocatedClusters += 1
                    if let expected = nextContiguous, host != expected { result.fragmentedClusters += 1 }
                    nextContiguous = host &+ cs
                    copiedChecks.append((host / cs, word & Qcow2.copiedFlag != 0,
                                         { "ERROR OFLAG_COPIED data cluster: l2_entry=\(hex(word)) refcount=\($0)" }))
                }
                count(host, cs, "data cluster")
            }
        }

        /// The stored refcount of every cluster against the counted one.
        mutating func mismatches() throws -> [(cluster: UInt64, stored: UInt64, counted: UInt64)] {
            var out: [(UInt64, UInt64, UInt64)] = []
            // (highest cluster + 1) × cluster size, highest starting at 0, as compare_refcounts.
            result.imageEndOffset = cs
            for c in 0..<clusterCount {
                let stored: UInt64
                do { stored = try storedRefcount(c) } catch {
                    result.checkErrors += 1
                    result.add(message: "Can't get refcount for cluster \(c): \(error)")
                    continue
                }
                let counted = UInt64(refs[Int(c)])
                if counted > 0 || stored > 0 { result.imageEndOffset = (c + 1) * cs }
                if stored != counted { out.append((c, stored, counted)) }
            }
            return out
        }

        /// The stored refcount of cluster `c` as QEMU's qcow2_get_refcount reads it: an aligned
        /// refcount block past the end of the file reads as zeros (our reader refuses it, since
        /// it would be written there); an unaligned one is an error.
        func storedRefcount(_ c: UInt64) throws -> UInt64 {
            let (_, table) = try image.refcounts.tableEntries()
            let index = c / UInt64(image.refcounts.blockEntries)
            let block = index < UInt64(table.count) ? table[Int(index)] & Qcow2.offsetMask : 0
            if block != 0, g.isClusterAligned(block), block >= fileSize { return 0 }
            return try image.refcounts.refcount(ofCluster: c)
        }

        mutating func compare() throws {
            for m in try mismatches() {
                // As compare_refcounts: a stored count above the references is a leak, below an error.
                if m.stored > m.counted {
                    result.leaks += 1
                    result.add(message: "Leaked cluster \(m.cluster) refcount=\(m.stored) reference=0")
                } else {
                    corrupt("cluster \(m.cluster) refcount=\(m.stored) reference=\(m.counted)")
                }
            }
        }

        /// Sets every stored refcount to the counted one: increments first, then leaks. New
        /// refcount blocks (for referenced clusters that had none) go past the end of the file.
        mutating func repair(_ sink: Qcow2MetadataSink) throws {
            let refcounts = image.refcounts
            let found = try mismatches()
            refcounts.table.withLock { $0.freeClusterHint = clusterCount }
            for m in found where m.counted > m.stored {
                try refcounts.set(cluster: m.cluster, to: m.counted, sink: sink)
                result.corruptionsFixed += 1
            }
            for m in found where m.counted < m.stored {
                try refcounts.set(cluster: m.cluster, to: m.counted, sink: sink)
                result.leaksFixed += 1     // a stored count above the references (compare_refcounts)
            }
            try refcounts.cache.flush(write: { offset, bytes in try sink.writeMetadata(bytes, at: offset, structure: .refcountBlock) },
                                      barrier: { try sink.barrier() })
            try sink.barrier()
            refcounts.table.withLock { $0.freeClusterHint = 0 }
        }

        /// COPIED must be set exactly when the stored refcount is one (qcow2 spec, "Cluster
        /// mapping"; QEMU's check_oflag_copied reads the refcounts, not the references counted).
        /// A refcount that cannot be read is skipped without a word, as there.
        mutating func checkCopiedFlags() {
            for check in copiedChecks {
                guard let stored = try? storedRefcount(check.cluster) else { continue }
                if (stored == 1) != check.copied { corruptLine(check.line(stored)) }
            }
        }
    }
}

extension Qcow2Image {
    /// Checks the image's metadata (QEMU's qcow2_check_refcounts); nothing is written.
    package func check() throws -> ImageCheckResult {
        do { return try Qcow2Check.run(self, repair: false, sink: nil) } catch {
            throw ImageError.wrap(error, path: path)
        }
    }
}
