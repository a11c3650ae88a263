import SystemPackage

/// The BAT of a dynamic or differencing VHD and where the writer appends. Guarded by
/// `VHDImage.state`.
struct VHDBATState {
    var bat: [UInt32]
    /// Where the next block goes: past every block and every metadata structure, and at the
    /// footer at the end of the file (QEMU's free_data_block_offset, kept at the file's end).
    var nextFree: UInt64 = 0
    /// Blocks whose entries changed since the last flush (their bitmap and data are written).
    var dirty: Set<Int> = []
}

/// Writing a VHD ("Virtual Hard Disk Image Format Specification" 1.0: "Hard Disk Footer
/// Format", "Dynamic Disk Header Format", "Block Allocation Table and Data Blocks"), as QEMU's
/// vpc_pwritev and alloc_block do: a fixed disk is written in place; in a dynamic disk a write to
/// an allocated block goes in place and an unallocated block is appended where the footer was,
/// as sector bitmap (all sectors present), block data (zeros around the written bytes) and the
/// footer moved to the new end of the file, in one write.
///
/// Crash safety (QEMU writes the BAT entry before the data): new BAT entries stay in memory until
/// `flush`, which syncs bitmap, data and footer first, then writes the entries. A crash before
/// that leaves an appended block no entry names (leaked space) and the footer still the last
/// sector of the file; never an entry pointing at unwritten data.
///
/// Differencing disks: the child alone is written (the parent is opened read-only). A block the
/// child lacks is copied from the parent whole when first written, with every sector's bit set;
/// a write to a block whose bitmap lacks some of its sectors writes those whole sectors (the
/// parent's bytes around the written ones), then sets their bits: data before the bits that
/// make it visible.
extension VHDImage: AppendingFormatWriter {
    private static let structure = "VHD image"

    func openForWriting() throws {
        func refuse(_ at: UInt64, _ structure: String, _ reason: String, _ errno: Errno = .notSupported) -> ImageError {
            ImageError(path: displayName, offset: at, structure: structure, reason: reason, errno: errno)
        }
        guard file.isWritable else { throw refuse(0, Self.structure, "the image file is not open for writing", .readOnlyFileSystem) }
        guard case let .dynamic(tableOffset, maxEntries, blockSize, bitmapSize) = metadata.layout else {
            // Fixed: the disk is the file before its footer; a footer claiming more is read
            // zero-padded, but not written past the footer.
            guard file.size >= UInt64(VHDFormat.footerSize), file.size - UInt64(VHDFormat.footerSize) >= size else {
                throw refuse(file.size, VHDMetadata.footerStructure,
                             "the footer says \(size) bytes but the file holds \(file.size) with its footer: not written")
            }
            return
        }
        // Every structure a block must not overlap: footer copy, dynamic header, BAT, parent locators.
        var metadataRanges: [Range<UInt64>] = [0 ..< UInt64(VHDFormat.footerSize)]
        let headerAt = metadata.footer.dataOffset
        metadataRanges.append(headerAt ..< headerAt + UInt64(VHDFormat.dynamicHeaderSize))   // checked at open
        let (batEnd, o1) = tableOffset.addingReportingOverflow(UInt64(maxEntries) * 4)
        guard !o1, batEnd < (1 << 62) else { throw refuse(headerAt + 16, VHDMetadata.headerStructure, "BAT end overflows") }
        metadataRanges.append(tableOffset ..< batEnd)
        for (i, locator) in (metadata.dynamicHeader?.parentLocators ?? []).enumerated() where locator.platformCode != 0 {
            let (end, o) = locator.dataOffset.addingReportingOverflow(UInt64(locator.dataSpace))
            guard !o, end < (1 << 62) else {
                throw refuse(headerAt + 576 + UInt64(24 * i), VHDParentLocator.structure, "parent locator \(i) ends past any file size")
            }
            metadataRanges.append(locator.dataOffset ..< end)
        }
        let span = bitmapSize + UInt64(blockSize)
        let entries = state.withLock { $0.bat }
        var blockRanges: [(range: Range<UInt64>, index: Int)] = []
        for (index, entry) in entries.enumerated() where entry != VHDFormat.unallocated {
            let start = UInt64(entry) * VHDFormat.sectorSize
            blockRanges.append((start ..< start + span, index))
        }
        blockRanges.sort { $0.range.lowerBound < $1.range.lowerBound }
        for (k, b) in blockRanges.enumerated() {
            let bad = metadataRanges.first { $0.overlaps(b.range) }
            let shared = k > 0 && blockRanges[k - 1].range.overlaps(b.range)
            if bad != nil || shared {
                throw refuse(metadataBATOffset(b.index), Self.batStructure,
                             "entry \(b.index) puts its block at 0x\(String(b.range.lowerBound, radix: 16)), over \(shared ? "another block" : "the image's metadata"): not written; convert the image with qemu-img convert",
                             .ioError)
            }
        }
        // The footer's place, rounded up to a sector: an image a crash left with a leaked block
        // has its footer after that block.
        let footerAt = (file.size - UInt64(VHDFormat.footerSize) + VHDFormat.sectorSize - 1) / VHDFormat.sectorSize * VHDFormat.sectorSize
        var next = max(footerAt, blockRanges.last?.range.upperBound ?? 0)
        for r in metadataRanges { next = max(next, r.upperBound) }
        next = (next + VHDFormat.sectorSize - 1) / VHDFormat.sectorSize * VHDFormat.sectorSize
        let final = next
        state.withLock { $0.nextFree = final }
    }

    /// Zeros (`buffer` nil): skipped in unallocated blocks of a dynamic disk (they read as zeros);
    /// a differencing disk must hide its parent's bytes, so there they are written like data.
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        guard let blocks else {
            try writeRun(buffer, length: length) { try file.write($0, at: offset) }
            return
        }
        var done = 0
        while done < length {
            let guest = offset + UInt64(done)
            let index = Int(guest / blocks.size)
            let within = guest % blocks.size
            let run = Int(min(UInt64(length - done), blocks.size - within))
            let part = buffer.map { UnsafeRawBufferPointer(rebasing: $0[done ..< done + run]) }
            if let host = try hostOffset(blockIndex: index, within: within, blocks: blocks) {
                if parent != nil {
                    try writeDifferencing(part, length: run, guest: guest, host: host, within: within, bitmap: host - within - blocks.bitmapSize)
                } else {
                    try writeRun(part, length: run) { try file.write($0, at: host) }
                }
            } else if part != nil || parent != nil {
                try allocate(index, data: part, length: run, within: Int(within), blocks: blocks)
            }
            done += run
        }
    }

    /// `body` with `buffer`, or with as many zeros.
    private func writeRun(_ buffer: UnsafeRawBufferPointer?, length: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let buffer { try body(buffer); return }
        try [UInt8](repeating: 0, count: length).withUnsafeBytes { try body($0) }
    }

    /// Appends block `index` at `nextFree`: bitmap, data (`data` at `within`, zeros or for a
    /// differencing disk the parent's bytes around it), footer; the BAT entry changes in memory only.
    private func allocate(_ index: Int, data: UnsafeRawBufferPointer?, length: Int, within: Int,
                          blocks: (size: UInt64, bitmapSize: UInt64)) throws {
        guard let raw = file as? RawImage else {
            throw ImageError(path: displayName, offset: UInt64(index) * blocks.size, structure: "write",
                             reason: "allocating a VHD block needs the image file to grow, which an NBD export cannot", errno: .notSupported)
        }
        let at = state.withLock { $0.nextFree }
        let sector = at / VHDFormat.sectorSize
        guard sector < UInt64(VHDFormat.unallocated) else {
            throw ImageError(path: displayName, offset: at, structure: Self.batStructure,
                             reason: "the file is too large for another block (BAT entries are 32-bit sector numbers)", errno: .noSpace)
        }
        let bitmap = Int(blocks.bitmapSize), blockSize = Int(blocks.size), footer = try footerBytes()
        // Every sector of the block is marked present (QEMU's alloc_block does the same).
        let bits = [UInt8](repeating: 0xFF, count: bitmap)
        if parent != nil {
            // The block as it reads now (the parent's bytes), then this write over it.
            var block = [UInt8](repeating: 0, count: blockSize)
            try block.withUnsafeMutableBytes { out in
                try readZeroPaddedPast(into: out, at: UInt64(index) * blocks.size)
                let target = UnsafeMutableRawBufferPointer(rebasing: out[within ..< within + length])
                if let data { target.copyMemory(from: data) } else { target.initializeMemory(as: UInt8.self, repeating: 0) }
            }
            try bits.withUnsafeBytes { b in try block.withUnsafeBytes { d in try footer.withUnsafeBytes { f in
                try raw.writeExtending(gathering: [b, d, f], at: at)
            } } }
        } else if let data, at + UInt64(bitmap + within + length) >= raw.size {
            // The rest of the block lies past the end of the file: left a hole, it reads as
            // zeros without being written, as QEMU's alloc_block leaves a new block (bitmap and
            // footer written, the data in place after). A 1 MiB write into a 2 MiB block then
            // writes 1 MiB, not 2. Only what lies below the old end is zeroed: the old footer
            // the bitmap (512 bytes or more) covers, in practice.
            let blockStart = at + UInt64(bitmap), oldEnd = raw.size
            let headZeros = Int(min(UInt64(within), oldEnd > blockStart ? oldEnd - blockStart : 0))
            try bits.withUnsafeBytes { b in
                if headZeros == within {
                    try raw.writeExtending(gathering: [b] + ZeroBytes.pieces(within) + [data], at: at)
                } else {
                    try raw.writeExtending(gathering: [b] + ZeroBytes.pieces(headZeros), at: at)
                    try raw.writeExtending(data, at: blockStart + UInt64(within))
                }
            }
            try footer.withUnsafeBytes { try raw.writeExtending($0, at: blockStart + UInt64(blockSize)) }
        } else {
            let middle = data.map { [$0] } ?? ZeroBytes.pieces(length)
            try bits.withUnsafeBytes { b in try footer.withUnsafeBytes { f in
                try raw.writeExtending(gathering: [b] + ZeroBytes.pieces(within) + middle + ZeroBytes.pieces(blockSize - within - length) + [f], at: at)
            } }
        }
        state.withLock { s in
            s.bat[index] = UInt32(sector)
            s.nextFree = at + UInt64(bitmap + blockSize)
            s.dirty.insert(index)
        }
    }

    /// The footer as the copy at byte 0 holds it (a dynamic disk's two copies are the same).
    private func footerBytes() throws -> [UInt8] {
        try file.readBytes(at: 0, count: VHDFormat.footerSize)
    }

    /// A write into an allocated block of a differencing disk: in place where every sector's
    /// bit is set; else the whole sectors, as they read now with this write over them, and then
    /// their bits.
    private func writeDifferencing(_ data: UnsafeRawBufferPointer?, length: Int, guest: UInt64, host: UInt64, within: UInt64,
                                   bitmap: UInt64) throws {
        let first = within / VHDFormat.sectorSize, last = (within + UInt64(length) - 1) / VHDFormat.sectorSize
        let firstByte = first / 8
        var bits = try file.readBytes(at: bitmap + firstByte, count: Int(last / 8 - firstByte + 1))
        func bit(_ s: UInt64) -> (Int, UInt8) { (Int(s / 8 - firstByte), 0x80 >> UInt8(s % 8)) }
        if (first ... last).allSatisfy({ let (i, m) = bit($0); return bits[i] & m != 0 }) {
            try writeRun(data, length: length) { try file.write($0, at: host) }
            return
        }
        let start = first * VHDFormat.sectorSize
        let count = Int((last + 1) * VHDFormat.sectorSize - start)
        let guestStart = guest - (within - start)
        var sectors = [UInt8](repeating: 0, count: count)
        try sectors.withUnsafeMutableBytes { try readZeroPaddedPast(into: $0, at: guestStart) }
        sectors.withUnsafeMutableBytes { out in
            let target = UnsafeMutableRawBufferPointer(rebasing: out[Int(within - start) ..< Int(within - start) + length])
            if let data { target.copyMemory(from: data) } else { target.initializeMemory(as: UInt8.self, repeating: 0) }
        }
        try file.writeBytes(sectors, at: host - (within - start))
        for s in first ... last { let (i, m) = bit(s); bits[i] |= m }
        try file.writeBytes(bits, at: bitmap + firstByte)
    }

    /// Makes earlier writes durable: bitmaps, data and footer synced, then the changed BAT
    /// entries (big-endian sector numbers, a 512-byte sector of them at a time), synced again.
    func flush() throws {
        guard isWritable else { return }
        try writeLock.withLock {
            try file.flush()
            let (bat, dirty) = state.withLock { ($0.bat, $0.dirty) }
            guard !dirty.isEmpty, case let .dynamic(tableOffset, _, _, _) = metadata.layout else { return }
            let perSector = Int(VHDFormat.sectorSize) / 4
            for sector in Set(dirty.map { $0 / perSector }).sorted() {
                let first = sector * perSector, end = min(bat.count, first + perSector)
                var bytes = [UInt8](repeating: 0, count: (end - first) * 4)
                for i in first ..< end { BigEndianBytes.put32(bat[i], into: &bytes, at: (i - first) * 4) }
                try file.writeBytes(bytes, at: tableOffset + UInt64(first) * 4)
            }
            try file.flush()
            state.withLock { $0.dirty.subtract(dirty) }
        }
    }
}
