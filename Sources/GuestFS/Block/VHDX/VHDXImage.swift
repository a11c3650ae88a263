import Synchronization
import SystemPackage

/// What the BAT holds now: every entry, sector-bitmap ones included, as on disk once flushed.
/// Guarded by `VHDXImage.state`.
struct VHDXBATState {
    var bat: [UInt64]
    /// The 4 KiB sectors of the BAT (index from the BAT's start) whose entries changed since the
    /// last flush: their blocks are written, the entries not yet logged.
    var dirtySectors: Set<Int> = []
}

/// A VHDX image, fixed or dynamic: payload blocks through the BAT, loaded once at open (bounded
/// by `VHDXFormat.maxBATEntries`). Read-only, after a dirty log was replayed in memory; or
/// writable (`VHDXImage+Write.swift`), after a dirty log was replayed into the file. Readers
/// look the BAT up under a short lock.
final class VHDXImage: BlockDevice {
    let file: any BlockDevice
    let metadata: VHDXMetadata
    let size: UInt64
    let isWritable: Bool
    var displayName: String { file.displayName }
    /// The BAT (payload block i's entry is at i + i / chunk ratio, "2.5 BAT") and what changed.
    let state: Mutex<VHDXBATState>
    /// The headers and the log of a writable open (`VHDXImage+Write.swift`); nil when read-only.
    let session: Mutex<VHDXWriteSession?>
    /// Serializes writers (allocation, header and log updates); readers never take it.
    let writeLock = BlockingLock()
    let blockSize: UInt64
    /// Whether a dirty log's active sequence was replayed in memory at open (`check` refuses
    /// such an image, as qemu-img check's read-only open does).
    let replayedLog: Bool

    static let batStructure = "VHDX BAT"

    /// `original` is the file as it is. Read-only, everything after the log replay reads the
    /// replayed view; writable, the checks run on that view first, so that a refused open
    /// leaves the file as it was, and only then is the log replayed into the file.
    init(file original: any BlockDevice, options: ImageOpenOptions) throws {
        let view = try VHDXMetadata.replayedView(of: original)
        // replayedView hands back the file itself when the log GUID names no valid sequence.
        replayedLog = view.device !== original
        metadata = try VHDXMetadata.read(from: view.device, logReplayed: view.replayed)
        size = metadata.virtualSize
        blockSize = UInt64(metadata.blockSize)
        let count = metadata.dataBlocks
        let entries = count == 0 ? 0 : count + (count - 1) / metadata.chunkRatio
        // Every entry, sector-bitmap ones included (one per chunk ratio): indexed as the spec does.
        let bat = try view.device.readTable(at: metadata.batOffset, count: Int(entries), entryBytes: 8) { $0.u64($1) }
        state = Mutex(VHDXBATState(bat: bat))
        isWritable = options.writable
        if options.writable {
            file = original
            session = Mutex(try Self.openForWriting(original, view: view.device, replayed: view.replayed, metadata: metadata, bat: bat))
        } else {
            file = view.device
            session = Mutex(nil)
        }
    }

    deinit { try? flush() }

    /// The file offset of BAT entry for payload block `index` (for messages).
    func entryOffset(_ index: Int) -> UInt64 {
        metadata.batOffset + (UInt64(index) + UInt64(index) / metadata.chunkRatio) * 8
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        var done = 0
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let index = Int(guest / blockSize)
            let within = guest % blockSize
            var run = Int(min(UInt64(buffer.count - done), blockSize - within))
            let host = try hostOffset(index, within: within)
            if let start = host {
                var next = index + 1
                var expected = start + UInt64(run)
                while done + run < buffer.count, let h = try hostOffset(next, within: 0), h == expected {
                    let more = Int(min(UInt64(buffer.count - done - run), blockSize))
                    run += more
                    expected += UInt64(more)
                    next += 1
                }
            }
            let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
            if let host { try file.read(into: chunk, at: host) } else { chunk.initializeMemory(as: UInt8.self, repeating: 0) }
            done += run
        }
    }

    /// Where guest byte `within` of payload block `index` is; nil for blocks that read as zeros
    /// (not present, undefined, zero, unmapped: QEMU's vhdx_co_readv). Partially present blocks
    /// belong to differencing disks, unknown states and offsets outside the file are damage:
    /// this read fails, the rest of the disk stays readable.
    func hostOffset(_ index: Int, within: UInt64) throws -> UInt64? {
        guard UInt64(index) < metadata.dataBlocks else { return nil }
        let entry = state.withLock { $0.bat[index + index / Int(metadata.chunkRatio)] }
        switch VHDXFormat.PayloadState(rawValue: UInt8(entry & VHDXFormat.batStateMask)) {
        case .notPresent, .undefined, .zero, .unmapped, .unmappedV095: return nil
        case .fullyPresent:
            let start = (entry >> VHDXFormat.batOffsetShift) << VHDXFormat.batOffsetShift
            // The last block may end with the disk: QEMU accepts a file that ends there too.
            let (end, overflow) = start.addingReportingOverflow(blockLength(index))
            guard !overflow, end <= file.size, start >= VHDXFormat.mib else {
                throw ImageError(path: file.displayName, offset: entryOffset(index), structure: Self.batStructure,
                                 reason: "entry \(index) puts block data at 0x\(String(start, radix: 16)), outside the file (\(file.size) bytes)")
            }
            return start + within
        case .partiallyPresent, nil:
            throw ImageError(path: file.displayName, offset: entryOffset(index), structure: Self.batStructure,
                             reason: "entry \(index) has block state \(entry & 7), which a disk without a parent cannot have")
        }
    }

    /// The bytes of payload block `index` the disk uses: the block size, less for a last block
    /// that the disk ends inside.
    func blockLength(_ index: Int) -> UInt64 {
        min(blockSize, size - min(size, UInt64(index) * blockSize))
    }
}
