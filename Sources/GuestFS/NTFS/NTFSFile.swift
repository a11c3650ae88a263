import GuestFSBlock
import GuestFSFilesystem

/// An open regular file of an NTFS volume: the unnamed $DATA attribute of one MFT record.
/// Each read opens the record and the attribute under the filesystem's lock and reads with
/// ntfs_attr_pread (which decompresses compression units and fills holes), as ntfs-3g's own
/// read does; nothing of libntfs-3g stays open between reads, so a closed volume fails cleanly.
/// On a writable volume the size and the data ranges are read again each time (writes change
/// them); on a read-only one they are those found at open.
package final class NTFSFile: GuestFile {
    let filesystem: NTFSFilesystem
    let node: UInt64
    let sizeAtOpen: UInt64
    let ranges: [(offset: UInt64, length: UInt64)]

    package var size: UInt64 {
        guard filesystem.isWritable else { return sizeAtOpen }
        return (try? filesystem.currentData(node).size) ?? sizeAtOpen
    }

    init(filesystem: NTFSFilesystem, node: UInt64, size: UInt64, ranges: [(offset: UInt64, length: UInt64)]) {
        self.filesystem = filesystem
        self.node = node
        self.sizeAtOpen = size
        self.ranges = ranges
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try filesystem.readData(node, into: buffer, at: offset)
    }

    package func dataRanges() throws -> [(offset: UInt64, length: UInt64)] {
        filesystem.isWritable ? try filesystem.currentData(node).ranges : ranges
    }
}
