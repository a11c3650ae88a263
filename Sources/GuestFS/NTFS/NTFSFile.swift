import GuestFSBlock
import GuestFSFilesystem

/// An open regular file of an NTFS volume: the unnamed $DATA attribute of one MFT record.
///
/// On a read-only volume, a plain non-resident attribute is mapped once at open (NTFSRunMap)
/// and read from the block device without the library lock, from as many threads as the FUSE
/// server runs. Everything else (resident, compressed, encrypted data, an odd runlist, and
/// every file of a writable volume, whose runlists change under libntfs-3g's writes) is read
/// as ntfs-3g reads it: each read opens the record and the attribute under the filesystem's
/// lock and calls ntfs_attr_pread (which decompresses compression units and fills holes);
/// nothing of libntfs-3g stays open between reads, so a closed volume fails cleanly.
/// On a writable volume the size and the data ranges are read again each time (writes change
/// them); on a read-only one they are those found at open.
package final class NTFSFile: GuestFile {
    let filesystem: NTFSFilesystem
    let node: UInt64
    let sizeAtOpen: UInt64
    let ranges: [(offset: UInt64, length: UInt64)]
    /// The device map of the data, when reads may bypass libntfs-3g (read-only volumes only:
    /// nothing can change the runlist there, so the map never goes stale).
    let map: NTFSRunMap?

    package var size: UInt64 {
        guard filesystem.isWritable else { return sizeAtOpen }
        return (try? filesystem.currentData(node).size) ?? sizeAtOpen
    }

    init(filesystem: NTFSFilesystem, node: UInt64, size: UInt64, ranges: [(offset: UInt64, length: UInt64)], map: NTFSRunMap? = nil) {
        self.filesystem = filesystem
        self.node = node
        self.sizeAtOpen = size
        self.ranges = ranges
        self.map = map
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        if let map { return try map.read(filesystem.device, node: node, into: buffer, at: offset) }
        return try filesystem.readData(node, into: buffer, at: offset)
    }

    package func dataRanges() throws -> [(offset: UInt64, length: UInt64)] {
        filesystem.isWritable ? try filesystem.currentData(node).ranges : ranges
    }
}
