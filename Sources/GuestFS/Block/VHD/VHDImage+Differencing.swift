/// Reads of a differencing VHD ("Dynamic Disk Header Format"; "Block Allocation Table" and
/// "Sector Bitmap"): a sector whose bit is set in its block's bitmap is the child's, every
/// other sector (and every sector of an unallocated block) is the parent's. Bit 7 of bitmap
/// byte 0 is the block's first sector.
extension VHDImage {
    func readDifferencing(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, parent: any BlockDevice,
                          blockSize: UInt64, bitmapSize: UInt64) throws {
        var done = 0
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let index = Int(guest / blockSize)
            let within = guest % blockSize
            let run = Int(min(UInt64(buffer.count - done), blockSize - within))
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
            if let data = try blockData(index) {
                // The bitmap bytes covering this chunk's sectors only.
                let firstSector = within / VHDFormat.sectorSize
                let lastSector = (within + UInt64(run) - 1) / VHDFormat.sectorSize
                let firstByte = firstSector / 8
                let bitmap = try file.readBytes(at: data - bitmapSize + firstByte, count: Int(lastSector / 8 - firstByte + 1))
                func isChild(_ sector: UInt64) -> Bool {
                    bitmap[Int(sector / 8 - firstByte)] & (0x80 >> UInt8(sector % 8)) != 0
                }
                var pos = 0
                while pos < run {
                    let at = within + UInt64(pos)
                    let mine = isChild(at / VHDFormat.sectorSize)
                    var end = (at / VHDFormat.sectorSize + 1) * VHDFormat.sectorSize
                    while end < within + UInt64(run), isChild(end / VHDFormat.sectorSize) == mine { end += VHDFormat.sectorSize }
                    let n = Int(min(end, within + UInt64(run)) - at)
                    let part = UnsafeMutableRawBufferPointer(rebasing: chunk[pos ..< pos + n])
                    if mine { try file.read(into: part, at: data + at) } else { try parent.readZeroPaddedPast(into: part, at: guest + UInt64(pos)) }
                    pos += n
                }
            } else {
                try parent.readZeroPaddedPast(into: chunk, at: guest)
            }
            done += run
        }
    }
}
