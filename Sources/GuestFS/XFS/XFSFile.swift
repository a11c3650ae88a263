import GuestFSBlock
import GuestFSFilesystem

/// An open regular file: its data fork mapped once at open (XFSBmapBtree), then every read
/// goes straight to the block device, from any number of threads, with no lock. Holes and
/// unwritten (preallocated) extents read as zeros, as the kernel's iomap reads them
/// (IOMAP_HOLE, IOMAP_UNWRITTEN).
public final class XFSFile: GuestFile {
    let device: any BlockDevice
    let geometry: XFSGeometry
    let extents: [XFSExtent]
    let inode: UInt64
    public let size: UInt64

    init(device: any BlockDevice, geometry: XFSGeometry, inode: UInt64, size: UInt64, extents: [XFSExtent]) {
        self.device = device
        self.geometry = geometry
        self.inode = inode
        self.size = size
        self.extents = extents
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        let wanted = Int(min(UInt64(buffer.count), size - offset))
        let blockLog = UInt64(geometry.blockLog)
        let blockMask = UInt64(geometry.blockSize) - 1
        var done = 0
        var index = XFSExtent.firstIndex(in: extents, endingAfter: offset >> blockLog)
        while done < wanted {
            let position = offset + UInt64(done)
            let block = position >> blockLog
            while index < extents.count, extents[index].fileOffset + extents[index].blockCount <= block { index += 1 }
            let rest = UInt64(wanted - done)
            guard index < extents.count, extents[index].fileOffset <= block else {
                // A hole up to the next extent, or to the end of what was asked.
                let holeEnd = index < extents.count ? extents[index].fileOffset << blockLog : UInt64.max
                let n = Int(min(rest, holeEnd - position))
                UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + n]).initializeMemory(as: UInt8.self, repeating: 0)
                done += n
                continue
            }
            let e = extents[index]
            let extentEnd = (e.fileOffset + e.blockCount) << blockLog   // validated under 2^54 blocks
            let n = Int(min(rest, extentEnd - position))
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + n])
            if e.unwritten {
                target.initializeMemory(as: UInt8.self, repeating: 0)
            } else {
                guard let start = geometry.byteOffset(fsblock: e.startBlock + (block - e.fileOffset)) else {
                    throw ImageError(path: device.displayName, structure: "inode \(inode) data extent",
                                     reason: "block \(e.startBlock) lies outside the filesystem", errno: .ioError)
                }
                let at = start + (position & blockMask)
                try device.checkRange(offset: at, length: n, structure: "inode \(inode) data")
                try device.read(into: target, at: at)
            }
            done += n
        }
        return done
    }

    /// The written extents within the size, adjacent ones merged (SEEK_DATA/SEEK_HOLE as the
    /// kernel answers them: unwritten extents are holes, iomap_seek_data).
    public func dataRanges() throws -> [(offset: UInt64, length: UInt64)] {
        var out: [(offset: UInt64, length: UInt64)] = []
        let blockLog = UInt64(geometry.blockLog)
        for e in extents where !e.unwritten {
            let start = e.fileOffset << blockLog
            guard start < size else { break }
            let end = min(size, (e.fileOffset + e.blockCount) << blockLog)
            if let last = out.last, last.offset + last.length == start {
                out[out.count - 1].length = end - last.offset
            } else {
                out.append((offset: start, length: end - start))
            }
        }
        return out
    }
}
