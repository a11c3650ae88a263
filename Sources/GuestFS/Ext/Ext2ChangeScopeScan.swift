import GuestFSBlock
import CExt2fs

/// The two reads `changeScope` (Ext2Filesystem+ChangeScope.swift) makes of a whole
/// filesystem, done straight from the device instead of through libext2fs: every inode slot
/// of every table, and the entries of the directories that did not change.
///
/// Why by hand: both are pure reads of fixed layouts (ext4 disk layout, "Inode Table",
/// "Linear (Classic) Directories"), and through libext2fs they were most of a fast diff's
/// time. ext2fs_get_next_inode_full copies every block into the I/O cache and every slot
/// out of it and checks each slot's checksum; ext2fs_dir_iterate2 reads each directory's
/// inode again and checks each block's checksum. Neither check changes the answer here: a
/// slot or block that fails its checksum fails alike on both sides unless its bytes changed,
/// and changed bytes are found by position, not by checksum. What cannot be read this way
/// (block-mapped and inline-data directories, extent trees with index levels, anything that
/// does not parse) goes back to libext2fs, whose answer the caller already handles.
struct Ext2TableScan {
    /// One inode slot, as far as the change scope needs it. Valid only during the call it is
    /// passed to: `bytes` points into the scan's buffer.
    struct Slot {
        var ino: UInt32
        var mode: UInt16
        var links: UInt16
        var flags: UInt32
        /// i_file_acl with its high half (0: no xattr block).
        var xattrBlock: UInt64
        /// The slot's bytes (at least the classic 128).
        var bytes: UnsafeRawBufferPointer

        /// The slot's bytes as libext2fs's large inode (i_block and what mapMeets reads),
        /// copied only for the slots that need it (directories, mostly): a copy of every slot
        /// was a fifth of a fast diff's scan.
        var raw: ext2_inode_large {
            var raw = ext2_inode_large()
            let n = min(bytes.count, MemoryLayout<ext2_inode_large>.size)
            withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<n])) }
            return raw
        }
    }

    /// Offsets in the on-disk inode (ext4 disk layout, "Index Nodes": struct ext4_inode).
    static let modeOffset = 0, linksOffset = 26, flagsOffset = 32, fileACLOffset = 104, fileACLHighOffset = 118
    /// EXT2_GOOD_OLD_INODE_SIZE: every slot holds at least the classic 128 bytes.
    static let minimumInodeSize = 128
    /// Bytes read from an inode table at a time.
    static let chunkBytes = 1 << 20

    /// Calls `body` for every slot of every group's table, in inode order. False when a table
    /// lies outside the device or does not hold its group's inodes (the caller then cannot tell).
    static func forEachSlot(device: any BlockDevice, blockSize: Int, inodeTables: [UInt64], inodesPerGroup: UInt64,
                            inodeSize: UInt64, tableBlocks: UInt64, _ body: (Slot) throws -> Void) throws -> Bool {
        guard blockSize > 0, inodeSize >= UInt64(minimumInodeSize), inodeSize <= UInt64(blockSize),
              UInt64(blockSize) % inodeSize == 0 else { return false }
        let tableBytes = tableBlocks.multipliedReportingOverflow(by: UInt64(blockSize))
        let neededBytes = inodesPerGroup.multipliedReportingOverflow(by: inodeSize)
        guard !tableBytes.overflow, !neededBytes.overflow, neededBytes.partialValue <= tableBytes.partialValue else { return false }
        let size = Int(inodeSize)
        // A whole number of slots per chunk.
        let chunk = max(size, chunkBytes / size * size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var ino: UInt64 = 0
        for table in inodeTables {
            let start = table.multipliedReportingOverflow(by: UInt64(blockSize))
            guard !start.overflow else { return false }
            let end = start.partialValue.addingReportingOverflow(neededBytes.partialValue)
            guard !end.overflow, end.partialValue <= device.size else { return false }
            var offset = start.partialValue
            while offset < end.partialValue {
                let n = Int(min(UInt64(chunk), end.partialValue - offset))
                let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
                try device.read(into: part, at: offset)
                var at = 0
                while at + size <= n {
                    ino += 1
                    guard let number = UInt32(exactly: ino) else { return false }
                    let slot = UnsafeRawBufferPointer(rebasing: part[at..<(at + size)])
                    let acl = UInt64(slot.loadUnaligned(fromByteOffset: fileACLOffset, as: UInt32.self).littleEndian)
                        | UInt64(slot.loadUnaligned(fromByteOffset: fileACLHighOffset, as: UInt16.self).littleEndian) << 32
                    try body(Slot(ino: number,
                                  mode: slot.loadUnaligned(fromByteOffset: modeOffset, as: UInt16.self).littleEndian,
                                  links: slot.loadUnaligned(fromByteOffset: linksOffset, as: UInt16.self).littleEndian,
                                  flags: slot.loadUnaligned(fromByteOffset: flagsOffset, as: UInt32.self).littleEndian,
                                  xattrBlock: acl, bytes: slot))
                    at += size
                }
                offset += UInt64(n)
            }
        }
        return true
    }

    /// Offset of i_block, the 60-byte block map or extent root (struct ext4_inode).
    static let blockMapOffset = 40

    /// A node whose blocks the extent root in its slot maps in full (depth 0, ext4 disk
    /// layout "Extent Tree"): its extents, in logical order, as (first physical block, count).
    /// Nil for anything else (block maps, index levels, uninitialized extents, a header that
    /// does not parse, an extent past the device's end). With no index level, these are all
    /// the blocks that map the node besides its slot.
    static func rootExtents(of slot: Slot, deviceBlocks: UInt64) -> [(start: UInt64, count: UInt64)]? {
        guard slot.flags & Ext2Filesystem.extentsFlag != 0, slot.flags & Ext2Filesystem.inlineDataFlag == 0,
              slot.bytes.count >= blockMapOffset + 60 else { return nil }
        let root = UnsafeRawBufferPointer(rebasing: slot.bytes[blockMapOffset..<(blockMapOffset + 60)])
        // struct ext4_extent_header: magic 0xF30A, entries, max, depth.
        guard root.loadUnaligned(fromByteOffset: 0, as: UInt16.self).littleEndian == 0xF30A else { return nil }
        let entries = Int(root.loadUnaligned(fromByteOffset: 2, as: UInt16.self).littleEndian)
        let depth = root.loadUnaligned(fromByteOffset: 6, as: UInt16.self).littleEndian
        guard depth == 0, entries <= 4 else { return nil }
        var extents: [(start: UInt64, count: UInt64)] = []
        extents.reserveCapacity(entries)
        for e in 0..<entries {
            // struct ext4_extent: ee_block, ee_len, ee_start_hi, ee_start_lo.
            let base = 12 * (e + 1)
            let length = root.loadUnaligned(fromByteOffset: base + 4, as: UInt16.self).littleEndian
            // Above 32768 the extent is uninitialized (reads as zeros): leave it to libext2fs.
            guard length > 0, length <= 32768 else { return nil }
            let start = UInt64(root.loadUnaligned(fromByteOffset: base + 6, as: UInt16.self).littleEndian) << 32
                | UInt64(root.loadUnaligned(fromByteOffset: base + 8, as: UInt32.self).littleEndian)
            let (last, overflow) = start.addingReportingOverflow(UInt64(length))
            guard !overflow, last <= deviceBlocks else { return nil }
            extents.append((start, UInt64(length)))
        }
        return extents
    }

    /// The inode numbers the entries of one directory block name, "." and ".." left out as the
    /// listing leaves them out. Nil when an entry does not parse (ext4 disk layout, "Linear
    /// (Classic) Directories": rec_len at least 8 and a multiple of 4, inside the block, room
    /// for the name); htree interior blocks and checksum tails are entries of inode 0.
    static func entryInodes(_ block: UnsafeRawBufferPointer, _ body: (UInt32) -> Void) -> Bool {
        var at = 0
        while at < block.count {
            guard block.count - at >= 8 else { return false }
            let inode = block.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian
            let stored = Int(block.loadUnaligned(fromByteOffset: at + 4, as: UInt16.self).littleEndian)
            // ext2fs_get_rec_len: 65535 or 0 is a whole 64 KiB block; otherwise the low two
            // bits carry bits 16-17 of the length.
            let length = (stored == 65535 || stored == 0) ? 65536 : (stored & 65532) | ((stored & 3) << 16)
            let nameLength = Int(block[at + 6])
            guard length >= 8, length % 4 == 0, length <= block.count - at, nameLength + 8 <= length else { return false }
            if inode != 0 {
                let isDot = nameLength == 1 && block[at + 8] == 0x2E
                let isDotDot = nameLength == 2 && block[at + 8] == 0x2E && block[at + 9] == 0x2E
                if !isDot, !isDotDot { body(inode) }
            }
            at += length
        }
        return true
    }
}
