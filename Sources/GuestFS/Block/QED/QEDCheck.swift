/// `imagemount check` of a QED image, as QEMU 7.2's qed_check (block/qed-check.c) without
/// fixing: every L1 and L2 entry is checked as the read path checks it (an invalid one is a
/// corruption), every referenced cluster is marked in a bitmap (a cluster referenced twice is a
/// corruption, and an L2 table whose clusters are taken is skipped), and unmarked clusters after
/// the header are leaks. qed_check prints no messages; the counts are qemu-img's, including its
/// fragmentation rule (an allocated cluster that does not follow the previous one of the same
/// L2 table).
extension QEDImage {
    func check() -> ImageCheckResult {
        var result = ImageCheckResult()
        let h = metadata.header
        let clusterSize = UInt64(h.clusterSize)
        result.totalClusters = (h.imageSize + clusterSize - 1) / clusterSize
        // QEMU's qed_bytes_to_clusters divides by cluster_size - 1, not cluster_size; the bitmap
        // is indexed the same way so that leaks are counted as qemu-img counts them.
        func index(_ bytes: UInt64) -> UInt64 { bytes.saturatingAdd(clusterSize - 1) / clusterSize * clusterSize / (clusterSize - 1) }
        let clusters = index(metadata.fileSize)
        var used = [UInt64](repeating: 0, count: Int((clusters + 63) / 64))
        /// Marks `n` clusters from `offset`; false (and a corruption per cluster) when any was marked.
        func mark(_ offset: UInt64, _ n: UInt64) -> Bool {
            var clean = true
            var cluster = index(offset)
            for _ in 0 ..< n {
                if cluster < clusters {
                    let (word, bit) = (Int(cluster / 64), UInt64(1) << (cluster % 64))
                    if used[word] & bit != 0 { result.corruptions += 1; clean = false }
                    used[word] |= bit
                }
                cluster += 1
            }
            return clean
        }
        _ = mark(h.l1TableOffset, UInt64(h.tableSize))
        var failed = false
        // The whole L1 table, as qed_check_l1_table walks it (entries past the image size included),
        // read a chunk at a time: a table can be 1 GiB.
        forEachEntry(ofTableAt: h.l1TableOffset, onError: { result.checkErrors += 1; failed = true }) { _, l2 in
            if l2 == QEDFormat.unallocated { return }
            guard h.isValidTable(l2, fileSize: metadata.fileSize) else { result.corruptions += 1; return }
            guard mark(l2, UInt64(h.tableSize)) else { return }
            var last: UInt64 = 0
            forEachEntry(ofTableAt: l2, onError: { result.checkErrors += 1; failed = true }) { _, entry in
                if entry == QEDFormat.unallocated || entry == QEDFormat.zeroCluster { return }
                result.allocatedClusters += 1
                if last != 0, last.saturatingAdd(clusterSize) != entry { result.fragmentedClusters += 1 }
                last = entry
                guard h.isValidCluster(entry, fileSize: metadata.fileSize) else { result.corruptions += 1; return }
                _ = mark(entry, 1)
            }
        }
        // Leaks only when every table could be read (qed_check).
        if !failed {
            var cluster = UInt64(h.headerClusters)
            while cluster < clusters {
                if used[Int(cluster / 64)] & (UInt64(1) << (cluster % 64)) == 0 { result.leaks += 1 }
                cluster += 1
            }
        }
        return result
    }

    /// Calls `body` with each entry of the table at `offset` (table_size clusters of 64-bit
    /// little-endian entries), reading 1 MiB at a time; a read that fails calls `onError` and ends the walk.
    private func forEachEntry(ofTableAt offset: UInt64, onError: () -> Void, _ body: (UInt64, UInt64) -> Void) {
        let entries = metadata.header.tableEntries
        let perChunk: UInt64 = 128 << 10
        var first: UInt64 = 0
        while first < entries {
            let n = min(perChunk, entries - first)
            guard let raw = try? file.readBytes(at: offset + first * 8, count: Int(n * 8)) else { onError(); return }
            let b = LittleEndianBytes(raw)
            for i in 0 ..< n { body(first + i, b.u64(Int(i) * 8)) }
            first += n
        }
    }
}
