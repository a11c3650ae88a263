import SystemPackage

/// What the block map holds now: entries (as on disk once flushed), the allocated-blocks count
/// and where the writer appends. Guarded by `VDIImage.state`.
struct VDIBlockMapState {
    var map: [UInt32]
    var blocksAllocated: UInt32
    /// The image block the next allocation takes: past every block an entry names and past the
    /// header's count (QEMU appends at blocks_allocated; a hostile map may name blocks beyond it).
    var nextBlock: UInt32 = 0
    /// Image blocks below `nextBlock` no entry names (leaked by a crash, or skipped by a foreign
    /// writer), highest first: allocation takes the lowest before appending, so a map with gaps
    /// still fits its disk in `blocks_in_image` blocks.
    var freeBlocks: [UInt32] = []
    /// Guest blocks whose entries changed since the last flush (their data is written, not yet synced).
    var dirty: Set<Int> = []
    /// Whether the header's count on disk differs from `blocksAllocated`.
    var headerDirty = false
}

/// Writing a VDI image, as QEMU's vdi_co_pwritev: a write to an allocated block goes in place;
/// a write to an unallocated (or discarded) block appends a whole new block at the end of the
/// data area, zero-filled around the written bytes, and points the block map entry at it.
///
/// Crash safety (stronger than QEMU's, which rewrites header and map right after each block):
/// new entries stay in memory until `flush`, which syncs the data first, then writes the map
/// entries and the header's count, then syncs again. A crash before that leaves appended blocks
/// no entry names (leaked space, which `qemu-img check` does not even see for VDI), never an entry
/// pointing at unwritten data. When the map starts right after the header and the changed
/// entries lie in the first 4 KiB of the file, map entries and count go out in one write within one
/// page, so even a crash between them cannot leave the count and the entries disagreeing;
/// elsewhere the entries go first, and a crash between the two writes leaves a count one
/// short, which the next writable open here recounts (qemu-img check calls it a mismatch).
extension VDIImage: AppendingFormatWriter {
    /// The layout and map checks a writable open adds to reading's: the map must lie between the
    /// header and the data, and `check` must find no entry out of range or shared.
    func openForWriting() throws {
        func refuse(_ at: UInt64, _ reason: String, _ errno: Errno = .notSupported) -> ImageError {
            ImageError(path: displayName, offset: at, structure: VDIFormat.structure, reason: reason, errno: errno)
        }
        guard file.isWritable else { throw refuse(0, "the image file is not open for writing", .readOnlyFileSystem) }
        let mapOffset = UInt64(header.offsetBlockMap)
        let mapEntries = UInt64(state.withLock { $0.map.count })
        guard mapOffset >= UInt64(VDIFormat.headerSize), mapOffset + mapEntries * 4 <= dataOffset else {
            throw refuse(0x154, "block map at 0x\(String(mapOffset, radix: 16)) overlaps the header or the data at 0x\(String(dataOffset, radix: 16)): not written")
        }
        let result = check()
        // A count mismatch alone is what an interrupted flush can leave: recounted below.
        let mismatch = result.messages.filter { $0.contains("allocated blocks mismatch") }.count
        guard result.corruptions == mismatch else {
            throw refuse(0x154, "the block map is damaged (\(result.messages.first ?? "")): not written; repair it with 'qemu-img check -r all'", .ioError)
        }
        try state.withLock { s in
            var count: UInt32 = 0
            var next = s.blocksAllocated
            for entry in s.map where entry < VDIFormat.discarded {
                count += 1
                next = max(next, entry + 1)   // entry < blocksInImage <= 0x3fffffff: no overflow
            }
            s.nextBlock = next
            // The gaps below `next`, at most one per map entry (more could never be used).
            let used = s.map.filter { $0 < VDIFormat.discarded }.sorted()
            var free: [UInt32] = []
            var candidate: UInt32 = 0
            for u in used + [next] where free.count < s.map.count {
                while candidate < u, free.count < s.map.count { free.append(candidate); candidate += 1 }
                candidate = max(candidate, u + 1)
            }
            s.freeBlocks = free.reversed()
            if count != s.blocksAllocated {
                s.blocksAllocated = count
                s.headerDirty = true
            }
            if s.nextBlock > 0, dataOffset + UInt64(s.nextBlock) * Self.blockSize > (UInt64(1) << 62) {
                throw refuse(0x158, "data area ends past any file size")
            }
        }
        if state.withLock({ $0.headerDirty }) && !(file is RawImage) {
            throw refuse(0x184, "the allocated-blocks count is wrong and the image is not a local file: not written", .readOnlyFileSystem)
        }
    }

    /// One write, block by block; `buffer` nil writes zeros. Holds `writeLock`.
    /// Zeros (`buffer` nil): in place in allocated blocks; nothing at all where a block is
    /// unallocated or discarded, since both read as zeros.
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        try writeByBlock(buffer, length: length, at: offset, into: file, blockSize: Self.blockSize,
                         hostOffset: { try hostOffset($0, within: $1) },
                         allocate: { index, data, within in try allocate(index, data: data, within: Int(within)) })
    }

    /// Appends a block for guest block `index` holding `data` at `within`, zeros around it; the
    /// entry changes in memory only (written at the next flush, after the data is synced).
    private func allocate(_ index: Int, data: UnsafeRawBufferPointer, within: Int) throws {
        guard let raw = file as? RawImage else {
            throw ImageError(path: displayName, offset: UInt64(index) * Self.blockSize, structure: "write",
                             reason: "allocating a VDI block needs the image file to grow, which an NBD export cannot", errno: .notSupported)
        }
        let block = state.withLock { $0.freeBlocks.last ?? $0.nextBlock }
        guard block < header.blocksInImage else {
            throw ImageError(path: displayName, offset: 0x180, structure: VDIFormat.structure,
                             reason: "all \(header.blocksInImage) blocks of the image are in use", errno: .noSpace)
        }
        let host = dataOffset + UInt64(block) * Self.blockSize
        let after = Int(Self.blockSize) - within - data.count
        try raw.writeExtending(gathering: ZeroBytes.pieces(within) + [data] + ZeroBytes.pieces(after), at: host)
        state.withLock { s in
            s.map[index] = block
            if s.freeBlocks.last == block { s.freeBlocks.removeLast() } else { s.nextBlock = block + 1 }
            s.blocksAllocated += 1
            s.dirty.insert(index)
            s.headerDirty = true
        }
    }

    /// Makes earlier writes durable: data synced, then the changed map entries and the header's
    /// count, synced again.
    func flush() throws {
        guard isWritable else { return }
        try writeLock.withLock {
            let (map, dirty, count, headerDirty) = state.withLock { ($0.map, $0.dirty, $0.blocksAllocated, $0.headerDirty) }
            try file.flush()
            guard headerDirty || !dirty.isEmpty else { return }
            var header = headerBytes
            LittleEndianBytes.put32(count, into: &header, at: 0x184)
            let mapOffset = Int(self.header.offsetBlockMap)
            let last = dirty.max() ?? -1
            if mapOffset == VDIFormat.headerSize, mapOffset + (last + 1) * 4 <= 4096 {
                // One write within the first page: header and the entries it counts together.
                var bytes = header
                bytes.reserveCapacity(mapOffset + (last + 1) * 4)
                for i in 0 ..< (last + 1) { LittleEndianBytes.append32(map[i], to: &bytes) }
                try file.writeBytes(bytes, at: 0)
            } else {
                // Entries first, a 512-byte sector of them at a time, then the count.
                let perSector = Int(VDIFormat.sectorSize) / 4
                for sector in Set(dirty.map { $0 / perSector }).sorted() {
                    let first = sector * perSector, end = min(map.count, first + perSector)
                    var bytes: [UInt8] = []
                    bytes.reserveCapacity((end - first) * 4)
                    for i in first ..< end { LittleEndianBytes.append32(map[i], to: &bytes) }
                    try file.writeBytes(bytes, at: UInt64(mapOffset) + UInt64(first) * 4)
                }
                try file.writeBytes(header, at: 0)
            }
            try file.flush()
            state.withLock { s in
                s.dirty.subtract(dirty)
                if s.blocksAllocated == count { s.headerDirty = false }
            }
        }
    }
}
