/// What a consistency check found, in the terms `qemu-img check` reports.
public struct Qcow2CheckResult: Sendable {
    /// Refcounts lower than the references, references outside the file, bad entries, COPIED flags.
    public var corruptions = 0
    /// Clusters with a refcount but no reference.
    public var leaks = 0
    /// Problems that kept the check from looking at something (unreadable tables).
    public var checkErrors = 0
    public var corruptionsFixed = 0
    public var leaksFixed = 0
    /// Guest clusters, and those the active L1/L2 tables map (data, compressed or preallocated zero).
    public var totalClusters: UInt64 = 0
    public var allocatedClusters: UInt64 = 0
    public var fragmentedClusters: UInt64 = 0
    public var compressedClusters: UInt64 = 0
    /// End of the last cluster that is referenced or has a refcount (as qemu-img check reports it).
    public var imageEndOffset: UInt64 = 0
    /// One line per problem, as qemu-img check prints them ("ERROR cluster 5 refcount=0 reference=1").
    public var messages: [String] = []
}

/// Our own consistency check of a qcow2 image (QEMU's qcow2_check_refcounts): count the references
/// to every host cluster from the header, the L1 and L2 tables of the active state and of every
/// snapshot, the snapshot table and the refcount structures, then compare with the stored refcounts.
/// With `repair`, stored refcounts are set to the counted ones (as `qemu-img check -r all` would).
enum Qcow2Check {
    /// Most host clusters the check counts (two bytes each in memory): a larger file is refused.
    static let maxClusters: UInt64 = 1 << 26

    static func run(_ image: Qcow2Image, repair: Bool, sink: Qcow2MetadataSink?) throws -> Qcow2CheckResult {
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
        let clusterCount: UInt64
        var refs: [UInt16]
        var result = Qcow2CheckResult()
        /// (cluster, COPIED set) of active L2 tables and active data clusters, checked at the end.
        var copiedChecks: [(cluster: UInt64, copied: Bool, what: String)] = []

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
            result.messages.append("ERROR \(message)")
        }

        /// One more reference to every cluster of `[offset, offset + length)`.
        mutating func count(_ offset: UInt64, _ length: UInt64, _ what: String) {
            guard length > 0 else { return }
            // offset and length come from the image: a sum past 2^64 is past the end of the file too.
            let (end, overflow) = offset.addingReportingOverflow(length - 1)
            let first = offset / cs, last = end / cs
            if overflow || last >= clusterCount {
                corrupt("\(what) at 0x\(hex(offset)) lies past the end of the file (0x\(hex(fileSize)))")
                return
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
            for (i, e) in entries.enumerated() where e & Qcow2.offsetMask != 0 {
                let block = e & Qcow2.offsetMask
                if !g.isClusterAligned(block) {
                    corrupt("refcount block \(i) is not cluster aligned; refcount table entry corrupted")
                    continue
                }
                count(block, cs, "refcount block \(i)")
            }
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
                result.messages.append("WARNING the \(b.nbBitmaps) persistent bitmaps are not checked; their clusters count as leaks")
            }
        }

        mutating func countL1(_ l1: [UInt64], active: Bool) throws {
            var previousHost: UInt64?
            for (l1Index, entry) in l1.enumerated() {
                let table = entry & Qcow2.offsetMask
                if table == 0 { continue }
                guard g.isClusterAligned(table), table >= cs, table + cs <= fileSize else {
                    corrupt("L2 table at 0x\(hex(table)) (L1 index \(l1Index)) is unaligned, in the header or past the end of the file")
                    continue
                }
                count(table, cs, "L2 table")
                previousHost = nil     // as qemu-img check counts fragmentation: within one L2 table
                if active { copiedChecks.append((table / cs, entry & Qcow2.copiedFlag != 0, "L2 table: l1_index=\(l1Index) l1_entry=\(hex(entry))")) }
                let bytes = try image.file.readBytes(at: table, count: Int(cs))
                bytes.withUnsafeBytes { b in
                    for i in 0..<g.l2Entries {
                        let word = Qcow2Bytes.u64(b, i * g.l2EntryBytes)
                        var bitmap = g.extendedL2 ? Qcow2Bytes.u64(b, i * g.l2EntryBytes + 8) : 0
                        // The bitmap cases QEMU's check_refcounts_l2 reports itself, with its words
                        // and the same effect on the counts (iotest 271): a compressed cluster with
                        // a bitmap is not counted (its clusters then leak); an allocated cluster
                        // whose bitmap says "allocated and zero" still is; an unallocated one with
                        // allocation bits is not.
                        if g.extendedL2 {
                            let alloc = bitmap & 0xFFFF_FFFF, zero = bitmap >> 32
                            if word & Qcow2.compressedFlag != 0 {
                                if bitmap != 0 {
                                    corrupt("compressed cluster \(i) with non-zero subcluster allocation bitmap, entry=0x\(hex(word))")
                                    continue
                                }
                            } else if word & Qcow2.offsetMask != 0 {
                                if alloc & zero != 0 {
                                    corrupt("offset=\(hex(word & Qcow2.offsetMask)): Allocated cluster has corrupted subcluster allocation bitmap")
                                    bitmap = (zero & ~alloc) << 32 | alloc
                                }
                            } else if alloc != 0 {
                                corrupt(": Unallocated cluster has non-zero subcluster allocation map")
                                continue
                            }
                        }
                        let e: Qcow2L2Entry
                        do { e = try Qcow2L2Entry(word: word, bitmap: bitmap, geometry: g, externalData: false) } catch {
                            corrupt("L2 entry \(i) of the table at 0x\(hex(table)): \(error)")
                            continue
                        }
                        if case .compressed(let d) = e.kind {
                            if word & Qcow2.copiedFlag != 0 {
                                corrupt(": coffset=0x\(hex(d.hostOffset)): copied flag must never be set for compressed clusters")
                            }
                            count(d.hostOffset, UInt64(max(d.length, 1)), "compressed cluster")
                            if active {
                                // QEMU counts every compressed cluster as fragmented too.
                                result.allocatedClusters += 1
                                result.compressedClusters += 1
                                result.fragmentedClusters += 1
                            }
                            continue
                        }
                        guard let host = e.hostCluster else { continue }
                        guard host >= cs, host + cs <= fileSize || host < fileSize else {
                            corrupt("data cluster at 0x\(hex(host)) (L2 table 0x\(hex(table)) entry \(i)) lies in the header or past the end of the file (0x\(hex(fileSize)))")
                            continue
                        }
                        count(host, cs, "data cluster")
                        if active {
                            result.allocatedClusters += 1
                            if let p = previousHost, host != p + cs { result.fragmentedClusters += 1 }
                            previousHost = host
                            copiedChecks.append((host / cs, e.copied, "data cluster: l2_entry=\(hex(word))"))
                        }
                    }
                }
            }
        }

        /// The stored refcount of every cluster against the counted one.
        mutating func mismatches() throws -> [(cluster: UInt64, stored: UInt64, counted: UInt64)] {
            var out: [(UInt64, UInt64, UInt64)] = []
            for c in 0..<clusterCount {
                let stored: UInt64
                do { stored = try image.refcounts.refcount(ofCluster: c) } catch {
                    result.checkErrors += 1
                    result.messages.append("ERROR cannot read the refcount of cluster \(c): \(error)")
                    continue
                }
                let counted = UInt64(refs[Int(c)])
                if counted > 0 || stored > 0 { result.imageEndOffset = (c + 1) * cs }
                if stored != counted { out.append((c, stored, counted)) }
            }
            return out
        }

        mutating func compare() throws {
            for m in try mismatches() {
                if m.counted == 0 {
                    result.leaks += 1
                    result.messages.append("Leaked cluster \(m.cluster) refcount=\(m.stored) reference=0")
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
                if m.counted == 0 { result.leaksFixed += 1 } else { result.corruptionsFixed += 1 }
            }
            try refcounts.cache.flush(write: { offset, bytes in try sink.writeMetadata(bytes, at: offset, structure: .refcountBlock) },
                                      barrier: { try sink.barrier() })
            try sink.barrier()
            refcounts.table.withLock { $0.freeClusterHint = 0 }
        }

        /// COPIED must be set exactly when the refcount is one (qcow2 spec, "Cluster mapping").
        mutating func checkCopiedFlags() {
            for check in copiedChecks {
                let counted = refs[Int(check.cluster)]
                if (counted == 1) != check.copied {
                    corrupt("OFLAG_COPIED \(check.what) refcount=\(counted)")
                }
            }
        }
    }
}

extension Qcow2Image {
    /// Checks the image's metadata (QEMU's qcow2_check_refcounts); nothing is written.
    public func check() throws -> Qcow2CheckResult {
        do { return try Qcow2Check.run(self, repair: false, sink: nil) } catch {
            throw ImageError.wrap(error, path: path)
        }
    }
}
