import Synchronization
import SystemPackage

/// A VHD image (QEMU's "vpc"): fixed disks are the file itself; dynamic and differencing disks
/// map blocks through the BAT, loaded once at open (bounded by `VHDFormat.maxTableEntries`).
/// Read-only, or writable (`VHDImage+Write.swift`); readers look the BAT up under a short lock.
final class VHDImage: BlockDevice {
    let file: any BlockDevice
    let metadata: VHDMetadata
    let size: UInt64
    let isWritable: Bool
    var displayName: String { file.displayName }
    /// Block size and sector bitmap size of a dynamic disk; nil for a fixed one.
    let blocks: (size: UInt64, bitmapSize: UInt64)?
    /// The BAT (empty for a fixed disk) and the writer's allocation state.
    let state: Mutex<VHDBATState>
    /// Serializes writers (allocation, BAT write-back); readers never take it.
    let writeLock = BlockingLock()
    /// The parent disk of a differencing VHD (always read-only).
    let parent: (any BlockDevice)?

    static let batStructure = "VHD BAT"

    /// The BAT as it is now (for tests).
    var bat: [UInt32] { state.withLock { $0.bat } }

    init(file: any BlockDevice, options: ImageOpenOptions,
         openBacking: (_ path: String, _ format: ImageFormat?) throws -> any BlockDevice) throws {
        self.file = file
        isWritable = options.writable
        metadata = try VHDMetadata.read(from: file)
        size = metadata.virtualSize
        switch metadata.layout {
        case .fixed:
            blocks = nil
            parent = nil
            state = Mutex(VHDBATState(bat: []))
        case let .dynamic(tableOffset, _, blockSize, bitmapSize):
            if metadata.diskType == .differencing, let header = metadata.dynamicHeader {
                let candidates = try VHDParentLocator.candidates(header, headerOffset: metadata.footer.dataOffset, file: file)
                guard let first = candidates.first else {
                    throw ImageError(path: file.displayName, offset: metadata.footer.dataOffset + 576, structure: VHDParentLocator.structure,
                                     reason: "differencing disk names no parent this host can open (no W2ru, W2ku or MacX locator)")
                }
                // The probing policy comes before any look at the host's files.
                try ImageOpener.checkMayOpen(first, as: "parent disk", options: options, image: file.displayName, format: .vpc)
                guard let path = VHDParentLocator.existing(candidates) else {
                    throw ImageError(path: file.displayName, structure: VHDParentLocator.structure,
                                     reason: "parent disk not found (looked for \(candidates.map { "'\(GuestName.display(Array($0.utf8)))'" }.joined(separator: ", ")))",
                                     errno: .noSuchFileOrDirectory)
                }
                parent = try openBacking(path, .vpc)
            } else {
                parent = nil
            }
            let count = Int((size + UInt64(blockSize) - 1) / UInt64(blockSize))
            // BAT entries are big-endian ("Block Allocation Table").
            let bat = try file.readTable(at: tableOffset, count: count, entryBytes: 4) { $0.u32($1).byteSwapped }
            blocks = (UInt64(blockSize), bitmapSize)
            state = Mutex(VHDBATState(bat: bat))
        }
        if options.writable { try openForWriting() }
    }

    deinit { try? flush() }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        if let parent, let blocks {
            try readDifferencing(into: buffer, at: offset, parent: parent, blockSize: blocks.size, bitmapSize: blocks.bitmapSize)
            return
        }
        guard let blocks else {
            // Fixed: QEMU reads the file as it is, past its end as zeros.
            try file.readZeroPaddedPast(into: buffer, at: offset)
            return
        }
        var done = 0
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let index = Int(guest / blocks.size)
            let within = guest % blocks.size
            var run = Int(min(UInt64(buffer.count - done), blocks.size - within))
            let host = try hostOffset(blockIndex: index, within: within, blocks: blocks)
            // Blocks laid out one after another on the host are read in one call.
            if let start = host {
                var next = index + 1
                var expected = start + UInt64(run)
                while done + run < buffer.count, let h = try hostOffset(blockIndex: next, within: 0, blocks: blocks), h == expected {
                    let more = Int(min(UInt64(buffer.count - done - run), blocks.size))
                    run += more
                    expected += UInt64(more)
                    next += 1
                }
            }
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
            if let host {
                try file.read(into: chunk, at: host)
            } else {
                chunk.initializeMemory(as: UInt8.self, repeating: 0)
            }
            done += run
        }
    }

    /// Where guest byte `within` of block `blockIndex` is in the file; nil when the block is not
    /// allocated (reads as zeros, as QEMU's get_image_offset). An entry pointing outside the
    /// file fails this read only.
    func hostOffset(blockIndex: Int, within: UInt64, blocks: (size: UInt64, bitmapSize: UInt64)) throws -> UInt64? {
        let entry = state.withLock { blockIndex < $0.bat.count ? $0.bat[blockIndex] : VHDFormat.unallocated }
        if entry == VHDFormat.unallocated { return nil }
        // entry is a sector number: at most 2^32 * 512, so no overflow in 64 bits.
        let bitmap = UInt64(entry) * VHDFormat.sectorSize
        let data = bitmap + blocks.bitmapSize
        if data + blocks.size > file.size {
            throw ImageError(path: file.displayName, offset: metadataBATOffset(blockIndex), structure: Self.batStructure,
                             reason: "entry \(blockIndex) puts block data at 0x\(String(data, radix: 16)), past the end of the file (\(file.size) bytes)")
        }
        return data + within
    }

    /// Where block `index`'s data starts in the file; nil when it is not allocated.
    func blockData(_ index: Int) throws -> UInt64? {
        guard let blocks else { return nil }
        return try hostOffset(blockIndex: index, within: 0, blocks: blocks)
    }

    func metadataBATOffset(_ index: Int) -> UInt64 {
        if case let .dynamic(tableOffset, _, _, _) = metadata.layout { return tableOffset + UInt64(index) * 4 }
        return 0
    }
}
