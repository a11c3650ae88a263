import Synchronization

/// A VMDK disk (QEMU's block/vmdk.c): a descriptor (standalone, or embedded in a monolithic
/// sparse extent) listing extents end to end, each flat (a range of a raw file) or hosted
/// sparse (grain directory and tables, maybe stream-optimized), over an optional parent named by
/// `parentFileNameHint`. Read-only, or writable except stream-optimized extents
/// (`VmdkImage+Write.swift`); the parent is always read-only.
final class VmdkImage: BlockDevice {
    let path: String
    let size: UInt64
    let isWritable: Bool
    /// The file opened as the image: the descriptor (standalone or embedded) lives in it.
    let file: any BlockDevice
    /// Serializes writers (grain allocation, table write-back, the CID update); readers never take it.
    let writeLock = BlockingLock()
    /// Whether this open has given the descriptor a new CID yet (QEMU's cid_updated).
    let cidUpdated = Mutex(false)
    var displayName: String { path }
    let metadata: VmdkMetadata
    let extents: [Extent]
    /// The parent disk, read where a sparse extent has no grain.
    let parent: (any BlockDevice)?
    /// Whether the parent's CID is the parentCID this image records; QEMU fails reads that reach
    /// the parent otherwise.
    let parentMatches: Bool

    /// One extent, placed at guest byte `start`.
    struct Extent: Sendable {
        enum Storage: Sendable {
            case flat(RawImage, offset: UInt64)
            case sparse(VmdkSparseExtent)
        }
        var start: UInt64
        var length: UInt64
        var storage: Storage
        /// The writer of a sparse extent of a writable image.
        var writer: VmdkSparseWriter?
    }

    /// The one line writable opens of stream-optimized (compressed) images are refused with.
    static let streamRefusal = "streamOptimized VMDK images are read-only: convert with 'qemu-img convert -O vmdk -o subformat=monolithicSparse IN OUT' (or -O qcow2) to write"

    init(file: any BlockDevice, options: ImageOpenOptions,
         openBacking: (String, ImageFormat?) throws -> any BlockDevice) throws {
        path = file.displayName
        self.file = file
        isWritable = options.writable
        let m = try VmdkMetadata.read(from: file)
        metadata = m
        var placed: [Extent] = []
        var start: UInt64 = 0
        func add(_ length: UInt64, _ storage: Extent.Storage) throws {
            let (end, overflow) = start.addingReportingOverflow(length)
            guard !overflow, end <= 1 << 52 else {
                throw ImageError(path: file.displayName, structure: "VMDK descriptor", reason: "extents add up to more than 4 PiB")
            }
            var writer: VmdkSparseWriter?
            if options.writable, case let .sparse(sparse) = storage {
                guard let raw = sparse.file as? RawImage, raw.isWritable else {
                    throw ImageError(path: sparse.file.displayName, structure: "VMDK extent",
                                     reason: "writing a sparse extent needs a local file that can grow", errno: .readOnlyFileSystem)
                }
                writer = try VmdkSparseWriter(extent: sparse, file: raw)
            }
            placed.append(Extent(start: start, length: length, storage: storage, writer: writer))
            start = end
        }
        if let sparse = m.embeddedSparse {
            try add(sparse.size, .sparse(sparse))
        } else {
            for extent in m.descriptor.extents {
                let resolved = ImageOpener.resolve(extent.file, relativeTo: file.displayName)
                try ImageOpener.checkMayOpen(resolved, as: "extent file", options: options, image: file.displayName, format: .vmdk)
                let extentFile = try RawImage(path: resolved, writable: options.writable)
                _ = try extentFile.lockLikeQEMU()
                let (bytes, overflow) = extent.sectors.multipliedReportingOverflow(by: VmdkFormat.sectorSize)
                guard !overflow else { throw ImageError(path: file.displayName, structure: "VMDK descriptor", reason: "extent of \(extent.sectors) sectors is too large") }
                switch extent.kind {
                case .flat, .vmfs:
                    let (offset, o2) = extent.offset.multipliedReportingOverflow(by: VmdkFormat.sectorSize)
                    guard !o2 else { throw ImageError(path: file.displayName, structure: "VMDK descriptor", reason: "flat extent offset \(extent.offset) is too large") }
                    // Written in place only: the file must hold the whole extent (qemu-img makes it so).
                    if options.writable, offset.saturatingAdd(bytes) > extentFile.size {
                        throw ImageError(path: resolved, structure: "VMDK extent",
                                         reason: "flat extent of \(bytes) bytes at \(offset) runs past the end of the file (\(extentFile.size) bytes): not written",
                                         errno: .readOnlyFileSystem)
                    }
                    try add(bytes, .flat(extentFile, offset: offset))
                case .sparse:
                    let sparse = try VmdkSparseExtent(file: extentFile, extents: m.descriptor.extents.count)
                    // QEMU takes the extent's length from its header, not the descriptor.
                    try add(sparse.size, .sparse(sparse))
                case .vmfsSparse, .seSparse:
                    throw ImageError(path: resolved, structure: "VMDK extent", reason: "\(extent.kind.rawValue) extents are not supported",
                                     errno: .notSupported)
                }
            }
        }
        extents = placed
        size = start
        if let hint = m.descriptor.parentFileNameHint {
            let resolved = ImageOpener.resolve(hint, relativeTo: file.displayName)
            try ImageOpener.checkMayOpen(resolved, as: "parent file", options: options, image: file.displayName, format: .vmdk)
            let opened = try openBacking(resolved, .vmdk)
            parent = opened
            parentMatches = (opened as? VmdkImage).map { $0.metadata.descriptor.cid == m.descriptor.parentCID } ?? false
        } else {
            parent = nil
            parentMatches = true
        }
    }

    deinit { try? flush() }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        var done = 0
        // Extents are sorted by start; the first one is found by binary search.
        var index = extentIndex(containing: offset)
        while done < buffer.count {
            let guest = offset + UInt64(done)
            guard index < extents.count else {
                UnsafeMutableRawBufferPointer(rebasing: buffer[done...]).initializeMemory(as: UInt8.self, repeating: 0)
                return
            }
            let extent = extents[index]
            let within = guest - extent.start
            let n = Int(min(UInt64(buffer.count - done), extent.length - within))
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + n])
            switch extent.storage {
            case let .flat(file, offset: base):
                try file.readZeroPadded(into: part, at: base.saturatingAdd(within))
            case let .sparse(sparse):
                try readSparse(sparse, within: within, guest: guest, into: part)
            }
            done += n
            index += 1
        }
    }

    func extentIndex(containing offset: UInt64) -> Int {
        var low = 0, high = extents.count
        while low < high {
            let mid = (low + high) / 2
            if extents[mid].start + extents[mid].length <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Reads `buffer.count` bytes at byte `within` of `sparse` (guest byte `guest`), grain by
    /// grain, merging runs of contiguous data grains into one host read.
    private func readSparse(_ sparse: VmdkSparseExtent, within: UInt64, guest: UInt64,
                            into buffer: UnsafeMutableRawBufferPointer) throws {
        if sparse.header.compressed, UInt64(buffer.count) >= 2 * sparse.grainBytes {
            return try readCompressedInParallel(sparse, within: within, guest: guest, into: buffer)
        }
        var done = 0
        while done < buffer.count {
            let at = within + UInt64(done)
            let inGrain = at % sparse.grainBytes
            var n = Int(min(UInt64(buffer.count - done), sparse.grainBytes - inGrain))
            let grain = try sparse.grain(at: at)
            if case let .data(host) = grain {
                // Extend over following grains that sit right after this one in the file.
                var next = host + sparse.grainBytes
                while done + n < buffer.count, case let .data(h) = try sparse.grain(at: at + UInt64(n)), h == next {
                    n += Int(min(UInt64(buffer.count - done - n), sparse.grainBytes))
                    next += sparse.grainBytes
                }
                try sparse.file.readPastEnd(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + n]), at: host + inGrain)
            } else {
                let part = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + n])
                switch grain {
                case let .compressed(host):
                    try sparse.readCompressed(host: host, within: Int(inGrain), into: part)
                case .zero, .data:
                    part.initializeMemory(as: UInt8.self, repeating: 0)
                case .unallocated:
                    try readParent(into: part, at: guest + UInt64(done))
                }
            }
            done += n
        }
    }

    /// A read of several grains of a stream-optimized extent: grains are looked up in order,
    /// then inflated on the bounded pool (QEMU's qcow2-threads width), whole grains straight
    /// into the caller's buffer, partial ones through the grain cache.
    private func readCompressedInParallel(_ sparse: VmdkSparseExtent, within: UInt64, guest: UInt64,
                                          into buffer: UnsafeMutableRawBufferPointer) throws {
        var pieces: [(grain: VmdkSparseExtent.Grain, inGrain: Int, start: Int, count: Int)] = []
        var done = 0
        while done < buffer.count {
            let at = within + UInt64(done)
            let inGrain = Int(at % sparse.grainBytes)
            let n = Int(min(UInt64(buffer.count - done), sparse.grainBytes - UInt64(inGrain)))
            pieces.append((try sparse.grain(at: at), inGrain, done, n))
            done += n
        }
        let failure = Mutex<(any Error)?>(nil)
        Qcow2Compression.forEachInParallel(pieces.count) { range in
            for i in range {
                let p = pieces[i]
                let part = UnsafeMutableRawBufferPointer(rebasing: buffer[p.start ..< p.start + p.count])
                do {
                    switch p.grain {
                    case let .compressed(host) where p.inGrain == 0 && UInt64(p.count) == sparse.grainBytes:
                        try sparse.inflate(host: host, into: part)
                    case let .compressed(host):
                        try sparse.readCompressed(host: host, within: p.inGrain, into: part)
                    case let .data(host):
                        try sparse.file.readPastEnd(into: part, at: host + UInt64(p.inGrain))
                    case .zero:
                        part.initializeMemory(as: UInt8.self, repeating: 0)
                    case .unallocated:
                        try readParent(into: part, at: guest + UInt64(p.start))
                    }
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// An unallocated range: the parent's bytes (zeros past its end), or zeros without one.
    func readParent(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        guard let parent else { buffer.initializeMemory(as: UInt8.self, repeating: 0); return }
        guard parentMatches else {
            throw ImageError(path: path, offset: offset, structure: "VMDK parent",
                             reason: "the parent's CID is not this image's parentCID \(String(metadata.descriptor.parentCID ?? 0, radix: 16))",
                             errno: .invalidArgument)
        }
        let inside = offset < parent.size ? Int(min(UInt64(buffer.count), parent.size - offset)) : 0
        if inside > 0 { try parent.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<inside]), at: offset) }
        if inside < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[inside...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}
