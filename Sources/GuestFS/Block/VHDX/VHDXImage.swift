import SystemPackage

/// A VHDX image, read-only, fixed or dynamic: payload blocks through the BAT, loaded once at
/// open (bounded by `VHDXFormat.maxBATEntries`), after a dirty log was replayed in memory. Immutable after open, so reads from several
/// threads need no lock.
final class VHDXImage: BlockDevice {
    let file: any BlockDevice
    let metadata: VHDXMetadata
    let size: UInt64
    var isWritable: Bool { false }
    var displayName: String { file.displayName }
    /// The BAT as it is on disk: payload block i's entry is at i + i / chunk ratio ("2.5 BAT").
    let bat: [UInt64]
    /// Whether a dirty log's active sequence was replayed in memory at open (`check` refuses
    /// such an image, as qemu-img check's read-only open does).
    let replayedLog: Bool
    private let blockSize: UInt64

    static let batStructure = "VHDX BAT"

    /// `original` is the file as it is; everything after the log replay reads `self.file`.
    init(file original: any BlockDevice, options: ImageOpenOptions) throws {
        if options.writable {
            throw ImageError(path: original.displayName, structure: "VHDX image",
                             reason: "writing VHDX images is not supported yet: convert with qemu-img convert -O qcow2",
                             errno: .readOnlyFileSystem)
        }
        // A dirty log is replayed first, in memory: `self.file` is the replayed view.
        let view = try VHDXMetadata.replayedView(of: original)
        self.file = view.device
        // replayedView hands back the file itself when the log GUID names no valid sequence.
        replayedLog = view.device !== original
        metadata = try VHDXMetadata.read(from: view.device, logReplayed: view.replayed)
        size = metadata.virtualSize
        blockSize = UInt64(metadata.blockSize)
        let count = metadata.dataBlocks
        let entries = count == 0 ? 0 : count + (count - 1) / metadata.chunkRatio
        // Every entry, sector-bitmap ones included (one per chunk ratio): indexed as the spec does.
        bat = try file.readTable(at: metadata.batOffset, count: Int(entries), entryBytes: 8) { $0.u64($1) }
    }

    /// The file offset of BAT entry for payload block `index` (for messages).
    private func entryOffset(_ index: Int) -> UInt64 {
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
    private func hostOffset(_ index: Int, within: UInt64) throws -> UInt64? {
        guard UInt64(index) < metadata.dataBlocks else { return nil }
        let entry = bat[index + index / Int(metadata.chunkRatio)]
        let state = VHDXFormat.PayloadState(rawValue: UInt8(entry & 7))
        switch state {
        case .notPresent, .undefined, .zero, .unmapped: return nil
        case .fullyPresent:
            let start = (entry >> 20) << 20
            let (end, overflow) = start.addingReportingOverflow(blockSize)
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

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws { throw readOnlyError(offset: offset) }

    func flush() throws {}
}
