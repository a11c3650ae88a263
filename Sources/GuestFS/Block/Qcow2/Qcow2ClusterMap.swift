/// A run of guest bytes that all read the same way (QEMU's qcow2_get_host_offset answer).
package struct Qcow2Extent: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        /// Stored uncompressed at `host` in the data file (the image itself, or the external data file).
        case data(host: UInt64)
        /// Reads as zeros, without consulting the backing file.
        case zero
        /// Not allocated here: read the backing file, or zeros without one.
        case unallocated
        /// Part of one compressed cluster; decompress it and take the bytes at the guest offset's
        /// position inside the cluster.
        case compressed(Qcow2CompressedDescriptor)
    }

    package var kind: Kind
    /// Bytes from the asked-for guest offset that read this way (at least 1, at most the asked length).
    package var length: Int
}

import Synchronization

/// Guest offset → host location, through the L1 table and cached L2 slices
/// (qcow2 spec, "Cluster mapping" and "Extended L2 Entries").
///
/// The L1 table is held in memory (it is bounded by `Qcow2.maxL1TableBytes`); L2 tables are read in
/// slices through a `Qcow2TableCache`. Every number from disk is checked before use, and bad ones
/// go through the corruption reporter, which fails only the request that met them.
final class Qcow2ClusterMap: Sendable {
    /// Bytes of an L2 table loaded at once: QEMU's default l2-cache-entry-size.
    static let l2SliceBytes = 4096

    let geometry: Qcow2Geometry
    /// The L1 table in host byte order; the writer changes entries (`setL1Entry`).
    private let l1Table: Mutex<[UInt64]>
    /// Size of the image file now, which bounds every table offset (it grows as the writer appends).
    var fileSize: UInt64 { currentFileSize() }
    private let currentFileSize: @Sendable () -> UInt64
    /// Whether guest data lives in an external data file (changes what "allocated" means).
    let externalData: Bool
    let cache: Qcow2TableCache
    let corruption: Qcow2CorruptionReporter
    /// L2 entries per cached slice.
    let sliceEntries: Int

    /// - Parameters:
    ///   - l1: the L1 table in host byte order, already bounds-checked by the caller.
    ///   - readMetadata: reads bytes of the image file (L2 slices come from here).
    init(geometry: Qcow2Geometry, l1: [UInt64], fileSize: @escaping @Sendable () -> UInt64, externalData: Bool,
         l2CacheBytes: Int, corruption: Qcow2CorruptionReporter,
         readMetadata: @escaping @Sendable (UInt64, UnsafeMutableRawBufferPointer) throws -> Void) {
        self.geometry = geometry
        self.l1Table = Mutex(l1)
        self.currentFileSize = fileSize
        self.externalData = externalData
        self.corruption = corruption
        let sliceBytes = min(geometry.clusterSize, Self.l2SliceBytes)
        self.sliceEntries = sliceBytes / geometry.l2EntryBytes
        self.cache = Qcow2TableCache(entryBytes: sliceBytes, capacityBytes: l2CacheBytes, loader: readMetadata)
    }

    /// A copy of the L1 table.
    var l1: [UInt64] { l1Table.withLock { $0 } }
    /// Entries in the L1 table.
    var l1Count: Int { l1Table.withLock { $0.count } }
    /// L1 entry `index`, or 0 (unallocated) past the table's end.
    func l1Entry(_ index: Int) -> UInt64 {
        l1Table.withLock { index < $0.count ? $0[index] : 0 }
    }
    /// Replaces L1 entry `index` in memory; the writer writes it back after the L2 table it names.
    func setL1Entry(_ index: Int, _ value: UInt64) {
        l1Table.withLock { $0[index] = value }
        l1Generation.add(1, ordering: .releasing)
    }

    /// Bumped by every L1 change, so the writer's overlap check knows when its index of L2
    /// table offsets is stale.
    let l1Generation = Atomic<UInt64>(0)

    /// The host offset of the L2 slice holding the entry for `guestOffset` in the L2 table at
    /// `l2Offset`, and the entry's index in that slice.
    func slice(l2Offset: UInt64, guestOffset: UInt64) -> (offset: UInt64, index: Int) {
        let l2Index = geometry.l2Index(guestOffset)
        return (l2Offset + UInt64(l2Index / sliceEntries * cache.entryBytes), l2Index % sliceEntries)
    }

    /// Decodes the L2 entry at `index` of a slice (throws a corruption report for a bad one).
    func entry(in slice: UnsafeRawBufferPointer, _ index: Int, sliceOffset: UInt64, guest: UInt64) throws -> Qcow2L2Entry {
        try decodeEntry(slice, index, at: sliceOffset + UInt64(index * geometry.l2EntryBytes), guest: guest)
    }

    /// How the bytes from `guestOffset` read, for at most `length` bytes (`length` > 0).
    ///
    /// The answer covers as many following (sub)clusters as read the same way and are contiguous on
    /// the host, up to the end of one L2 slice. A compressed answer never goes past its cluster.
    func map(guestOffset: UInt64, length: Int) throws -> Qcow2Extent {
        precondition(length > 0, "empty mapping request")
        let g = geometry
        let l1Index = g.l1Index(guestOffset)
        let l2End = UInt64(l1Index + 1) * g.bytesPerL2Table
        let limit = min(UInt64(length), l2End - guestOffset)

        // A snapshot's L1 table may be shorter than the disk: the rest is unallocated.
        let l2Offset = l1Entry(l1Index) & Qcow2.offsetMask
        if l2Offset == 0 { return Qcow2Extent(kind: .unallocated, length: Int(limit)) }
        try checkL2TableOffset(l2Offset, l1Index: l1Index)

        let l2Index = g.l2Index(guestOffset)
        let sliceIndex = l2Index / sliceEntries
        let firstEntry = l2Index % sliceEntries
        let sliceOffset = l2Offset + UInt64(sliceIndex * cache.entryBytes)
        let clusterIndex = guestOffset >> UInt64(g.clusterBits)
        let sliceGuestEnd = (clusterIndex + UInt64(sliceEntries - firstEntry)) << UInt64(g.clusterBits)
        let end = guestOffset + min(limit, sliceGuestEnd - guestOffset)

        return try cache.withTable(at: sliceOffset) { slice in
            var run: Qcow2Extent?
            var pos = guestOffset
            var entryIndex = firstEntry
            while pos < end {
                let entryOffset = sliceOffset + UInt64(entryIndex * g.l2EntryBytes)
                let entry = try decodeEntry(slice, entryIndex, at: entryOffset, guest: pos)
                let clusterStart = pos & ~UInt64(g.clusterSize - 1)
                let clusterEnd = min(clusterStart + UInt64(g.clusterSize), end)
                var unitIndex = g.subclusterIndex(pos)
                while pos < clusterEnd {
                    let unitStart = clusterStart + UInt64(unitIndex << g.subclusterBits)
                    let unitEnd = min(unitStart + UInt64(g.subclusterSize), clusterEnd)
                    let unit = entry.unit(unitIndex, geometry: g)
                    let kind = try checkedKind(unit, skipping: pos - unitStart, entryOffset: entryOffset, guest: pos)
                    let n = Int(unitEnd - pos)
                    if var current = run {
                        guard Self.continues(current, with: kind) else { return current }
                        current.length += n
                        run = current
                    } else if case .compressed = kind {
                        return Qcow2Extent(kind: kind, length: Int(clusterEnd - pos))
                    } else {
                        run = Qcow2Extent(kind: kind, length: n)
                    }
                    pos = unitEnd
                    unitIndex += 1
                }
                entryIndex += 1
            }
            guard let run else { preconditionFailure("mapping produced no extent") }
            return run
        }
    }

    /// Whether `next` (starting right where `run` ends) reads the same way, contiguously.
    private static func continues(_ run: Qcow2Extent, with next: Qcow2Extent.Kind) -> Bool {
        switch (run.kind, next) {
        case (.zero, .zero), (.unallocated, .unallocated): return true
        case let (.data(a), .data(b)): return b == a + UInt64(run.length)
        default: return false
        }
    }

    /// Decodes entry `index` of a slice; a bad entry becomes a corruption report.
    private func decodeEntry(_ slice: UnsafeRawBufferPointer, _ index: Int, at entryOffset: UInt64,
                             guest: UInt64) throws -> Qcow2L2Entry {
        let at = index * geometry.l2EntryBytes
        let word = Qcow2Bytes.u64(slice, at)
        let bitmap = geometry.extendedL2 ? Qcow2Bytes.u64(slice, at + 8) : 0
        do {
            return try Qcow2L2Entry(word: word, bitmap: bitmap, geometry: geometry, externalData: externalData)
        } catch {
            throw corruption.signalCorruption(
                "\(error.reason) (L2 entry 0x\(hex(word)) for guest offset 0x\(hex(guest)))",
                structure: "L2 entry", offset: entryOffset, size: UInt64(geometry.l2EntryBytes))
        }
    }

    /// The unit as an extent kind, after checking its host offset against the file.
    func checkedKind(_ unit: Qcow2L2Entry.Unit, skipping: UInt64, entryOffset: UInt64,
                             guest: UInt64) throws -> Qcow2Extent.Kind {
        switch unit {
        case .zero: return .zero
        case .unallocated: return .unallocated
        case .data(let host):
            if !externalData {
                if host < UInt64(geometry.clusterSize) {
                    throw corruption.signalCorruption(
                        "data cluster for guest offset 0x\(hex(guest)) points into the image header (host offset 0x\(hex(host)))",
                        structure: "L2 entry", offset: entryOffset, size: UInt64(geometry.l2EntryBytes))
                }
                if host >= fileSize {
                    throw corruption.signalCorruption(
                        "data cluster for guest offset 0x\(hex(guest)) at host offset 0x\(hex(host)) is past the end of the file (0x\(hex(fileSize)))",
                        structure: "L2 entry", offset: entryOffset, size: UInt64(geometry.l2EntryBytes))
                }
            }
            return .data(host: host + skipping)
        case .compressed(let d):
            if d.hostOffset < UInt64(geometry.clusterSize) || d.hostOffset >= fileSize {
                throw corruption.signalCorruption(
                    "compressed cluster for guest offset 0x\(hex(guest)) at host offset 0x\(hex(d.hostOffset)) lies outside the data area of the file (size 0x\(hex(fileSize)))",
                    structure: "L2 entry", offset: entryOffset, size: UInt64(geometry.l2EntryBytes))
            }
            return .compressed(d)
        }
    }

    /// An L2 table must be cluster-aligned, past the header, and inside the file
    /// (QEMU checks the same before loading an L2 slice).
    func checkL2TableOffset(_ offset: UInt64, l1Index: Int) throws {
        let size = UInt64(geometry.clusterSize)
        let l1Note = "(L1 index 0x\(String(l1Index, radix: 16)))"
        if !geometry.isClusterAligned(offset) {
            throw corruption.signalCorruption("L2 table offset 0x\(hex(offset)) is not cluster-aligned \(l1Note)",
                                              structure: "L2 table", offset: offset, size: size)
        }
        if offset < size {
            throw corruption.signalCorruption("L2 table offset 0x\(hex(offset)) points into the image header \(l1Note)",
                                              structure: "L2 table", offset: offset, size: size)
        }
        if offset > fileSize || fileSize - offset < size {
            throw corruption.signalCorruption(
                "L2 table at 0x\(hex(offset)) runs past the end of the file (0x\(hex(fileSize))) \(l1Note)",
                structure: "L2 table", offset: offset, size: size)
        }
    }
}

/// Lower-case hex without prefix, for messages.
func hex<T: BinaryInteger>(_ value: T) -> String { String(value, radix: 16) }
