import GuestFSBlock
import GuestFSFilesystem

/// An open regular file of an NTFS volume: the unnamed $DATA attribute of one MFT record.
/// Each read opens the record and the attribute under the filesystem's lock and reads with
/// ntfs_attr_pread (which decompresses compression units and fills holes), as ntfs-3g's own
/// read does; nothing of libntfs-3g stays open between reads, so a closed volume fails cleanly.
package final class NTFSFile: GuestFile {
    let filesystem: NTFSFilesystem
    let node: UInt64
    package let size: UInt64
    let ranges: [(offset: UInt64, length: UInt64)]

    init(filesystem: NTFSFilesystem, node: UInt64, size: UInt64, ranges: [(offset: UInt64, length: UInt64)]) {
        self.filesystem = filesystem
        self.node = node
        self.size = size
        self.ranges = ranges
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try filesystem.readData(node, into: buffer, at: offset)
    }

    package func dataRanges() throws -> [(offset: UInt64, length: UInt64)] { ranges }
}
