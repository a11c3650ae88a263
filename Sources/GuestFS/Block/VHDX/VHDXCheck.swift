/// `imagemount check` of a VHDX image, as QEMU 7.2's vhdx_co_check (block/vhdx.c), which is
/// vhdx_check_bat_entries counting instead of failing: every fully present BAT entry must start
/// inside the file and, but for a last block cut short, end inside it; a payload block ([MS-VHDX]
/// "2.5 BAT") must not overlap the log or a region of the region table. Messages are qemu-img's.
///
/// What qemu-img check cannot open it cannot check: a dirty log (QEMU refuses to replay it on a
/// read-only open; imagemount replays it in memory for reads, `VHDXLog.swift`), a damaged first
/// region table or overlapping regions (QEMU reads only the first copy, and checks overlaps as it
/// registers the regions). Those end in `failure`, as qemu-img's exit 1. Repair (`-r`, which in
/// QEMU is the log replay of a writable open) is not offered.
extension VHDXImage {
    /// A range of the file QEMU's vhdx_region_register notes: [start, end), end computed as QEMU
    /// computes it (wrapping, in 64 bits).
    private struct Region {
        var start: UInt64
        var end: UInt64
        init(_ start: UInt64, _ length: UInt64) { (self.start, self.end) = (start, start &+ length) }
        func overlaps(_ other: Region) -> Bool { !(other.start >= end || other.end <= start) }
    }

    func check() throws -> ImageCheckResult {
        var result = ImageCheckResult()
        result.countsClusters = false
        if replayedLog {
            result.failure = "contains a log that needs to be replayed, and check opens images read-only (so does qemu-img check, which refuses the image: qemu-img check -r all replays the log into the file)"
            return result
        }
        // vhdx_parse_header registers the current header's log, then vhdx_open_region_tables each
        // entry of the first region table, failing the open on an overlap; QEMU's list is newest
        // first, so an overlap names the last region registered.
        let header = try VHDXMetadata.currentHeader(of: file)
        var regions = [Region(header.logOffset, UInt64(header.logLength))]
        let at = VHDXFormat.regionTableOffsets[0]
        let raw = try file.readBytes(at: at, count: VHDXFormat.regionTableSize)
        let b = LittleEndianBytes(raw)
        guard Array(raw[0 ..< 4]) == VHDXFormat.regionSignature, b.u32(4) == VHDXFormat.crc32c(raw, checksumAt: 4),
              b.u32(8) <= VHDXFormat.maxRegionEntries else {
            result.failure = "the first region table is damaged: qemu-img check cannot open the image (imagemount reads the second copy)"
            return result
        }
        for i in 0 ..< Int(b.u32(8)) {
            let region = Region(b.u64(16 + 32 * i + 16), UInt64(b.u32(16 + 32 * i + 24)))
            if let other = regions.reversed().first(where: region.overlaps) {
                result.add(message: Self.overlapMessage(region, other))
                result.failure = "its regions overlap: qemu-img check cannot open the image"
                return result
            }
            regions.append(region)
        }
        let index = RegionIndex(regions)

        let fileSize = file.size
        let blockSize = UInt64(metadata.blockSize)
        // QEMU's bs->total_sectors is the virtual size in *logical* sectors, multiplied by 512
        // here: the last block's length is computed as QEMU computes it.
        let logicalShift = UInt64(metadata.logicalSectorSize.trailingZeroBitCount)
        let totalBytes = (metadata.virtualSize >> logicalShift) &* 512
        var payloadBlocks = metadata.chunkRatio
        let bat = state.withLock { $0.bat }
        for (i, entry) in bat.enumerated() where entry & 7 == UInt64(VHDXFormat.PayloadState.fullyPresent.rawValue) {
            let offset = entry & 0xFFFF_FFFF_FFF0_0000
            let blockLength = min(blockSize, totalBytes &- UInt64(i) &* blockSize)
            if offset > UInt64(Int64.max) - blockSize {
                result.add(message: "VHDX BAT entry \(i) offset overflow.")
                result.corruptions += 1
            }
            if offset >= fileSize {
                result.add(message: "VHDX BAT entry \(i) start offset \(offset) points after end of file (\(fileSize)). Image has probably been truncated.")
                result.corruptions += 1
            } else if offset + blockLength > fileSize {
                result.add(message: "VHDX BAT entry \(i) end offset \(offset + blockLength - 1) points after end of file (\(fileSize)). Image has probably been truncated.")
                result.corruptions += 1
            }
            // QEMU takes every (chunk ratio + 1)th fully present entry for a sector bitmap block
            // and checks only the others against the regions (its payblocks counter).
            if payloadBlocks != 0 {
                payloadBlocks -= 1
                let block = Region(offset, blockSize)
                if let other = index.newestOverlapping(block) {
                    result.add(message: Self.overlapMessage(block, other))
                    result.corruptions += 1
                }
            } else {
                payloadBlocks = metadata.chunkRatio
            }
        }
        return result
    }

    /// The registered regions, for "the newest one a block overlaps" (what QEMU's walk of its
    /// list finds first) in O(log n) per block, so that 4 Mi BAT entries over 2048 regions stay
    /// cheap. The regions whose end did not wrap past 2^64 are pairwise disjoint (the open refused
    /// overlaps), so sorted by start their ends rise too, and those a block overlaps are a run of
    /// them; a sparse table gives the newest of a run. A region whose end wrapped (the log's
    /// fields are not checked when there is no log) is looked at on its own.
    private struct RegionIndex {
        private typealias Entry = (region: Region, order: Int)
        private let sorted: [Entry]
        private let wrapped: [Entry]
        /// newest[k][i]: the position in `sorted` of the newest region of sorted[i ..< i + 2^k].
        private let newest: [[Int]]

        init(_ regions: [Region]) {
            let all: [Entry] = regions.enumerated().map { (region: $0.element, order: $0.offset) }
            sorted = all.filter { $0.region.start <= $0.region.end }
                .sorted { ($0.region.start, $0.region.end) < ($1.region.start, $1.region.end) }
            wrapped = all.filter { $0.region.start > $0.region.end }
            var levels = [Array(sorted.indices)]
            var width = 1
            while width * 2 <= sorted.count, let previous = levels.last {
                let items = sorted
                levels.append((0 ... items.count - 2 * width).map { i in
                    let (a, b) = (previous[i], previous[i + width])
                    return items[a].order > items[b].order ? a : b
                })
                width *= 2
            }
            newest = levels
        }

        func newestOverlapping(_ block: Region) -> Region? {
            var best = wrapped.filter { block.overlaps($0.region) }.max { $0.order < $1.order }
            // Overlapping: ending after the block's start and starting before its end.
            let low = firstIndex { $0.region.end > block.start }
            let high = firstIndex { $0.region.start >= block.end }
            if low < high {
                var level = 0
                while 1 << (level + 1) <= high - low { level += 1 }
                let (a, b) = (newest[level][low], newest[level][high - (1 << level)])
                let run = sorted[a].order > sorted[b].order ? sorted[a] : sorted[b]
                if run.order > best?.order ?? -1 { best = run }
            }
            return best?.region
        }

        /// The first position of `sorted` where `predicate` holds (it holds from there on).
        private func firstIndex(_ predicate: (Entry) -> Bool) -> Int {
            var (low, high) = (0, sorted.count)
            while low < high {
                let mid = (low + high) / 2
                if predicate(sorted[mid]) { high = mid } else { low = mid + 1 }
            }
            return low
        }
    }

    /// vhdx_region_check's line; its format prints the other region's end with "%.lu", which
    /// prints nothing for 0.
    private static func overlapMessage(_ region: Region, _ other: Region) -> String {
        "VHDX region \(region.start)-\(region.end) overlaps with region \(other.start)-\(other.end == 0 ? "" : String(other.end))"
    }
}
