import Synchronization

/// Writing guest data into a qcow2 image (QEMU's qcow2_co_pwritev_part, handle_alloc,
/// perform_cow and qcow2_alloc_cluster_link_l2; qcow2 spec, "Cluster mapping").
///
/// One write at a time (a lock serializes allocation); reads never take that lock. Order on disk:
/// guest data and new refcounts are written first, L2 tables after a flush barrier, L1 entries
/// after another, and clusters given up (copy-on-write of shared or compressed clusters) are freed
/// last. A crash at any point leaks clusters at worst; it never leaves an entry that points at a
/// free or shared cluster. Metadata is cached (dirty L2 slices and refcount blocks) until `flush`,
/// which is when earlier writes become durable.
final class Qcow2Writer: Qcow2MetadataSink, @unchecked Sendable {
    // @unchecked: every mutable field is in `state` (a Mutex) or is atomic; the rest is immutable.
    unowned let image: Qcow2Image
    /// The image's path, for messages (not through `image`: `close` runs from the image's deinit).
    let path: String
    let file: RawImage
    let geometry: Qcow2Geometry
    let map: Qcow2ClusterMap
    let refcounts: Qcow2Refcount
    let corruption: Qcow2CorruptionReporter
    /// Where the metadata of the opened image lies, for the overlap check.
    let l1Range: Range<UInt64>
    let snapshotRanges: [Range<UInt64>]
    /// The LUKS header's bytes in an encrypted image: overwriting them (a cluster handed out
    /// again because its refcount was damaged) would lose the key material and with it every
    /// byte of the image, so the overlap check guards them too, beyond QEMU's list.
    let encryptionHeaderRange: Range<UInt64>?
    /// Whether the image has the zero flag (version 3) to store zeros without data.
    let hasZeroFlag: Bool
    /// Set once corruption was found or the image was closed: every later write fails.
    let disabled = Atomic<Bool>(false)
    /// The incompatible feature bits as the header holds them now.
    let incompatible: Atomic<UInt64>

    struct State {
        /// Clusters to give up once the L2/L1 entries that replaced them are durable.
        var pendingFrees: [Range<UInt64>] = []
        /// L1 entries changed in memory, not yet written.
        var dirtyL1: Set<Int> = []
        /// Whether data was written since the last barrier.
        var unsyncedData = false
        /// Whether this writer set the dirty bit (lazy refcounts) and must clear it on close.
        var setDirtyBit = false
        var closed = false
    }
    let state = Mutex(State())
    /// See `metadataIndex()`.
    private let overlapIndex = Mutex(MetadataIndex())

    init(image: Qcow2Image, path: String, file: RawImage, map: Qcow2ClusterMap, refcounts: Qcow2Refcount,
         corruption: Qcow2CorruptionReporter, metadata: Qcow2Metadata, snapshotRanges: [Range<UInt64>]) {
        self.image = image
        self.path = path
        self.file = file
        self.geometry = metadata.geometry
        self.map = map
        self.refcounts = refcounts
        self.corruption = corruption
        let h = metadata.header
        self.l1Range = h.l1TableOffset..<(h.l1TableOffset + UInt64(h.l1Size) * 8)
        self.snapshotRanges = snapshotRanges
        // Bounds were checked when the key was tried (Qcow2Encryption.open).
        if h.cryptMethod == Qcow2CryptMethod.luks.rawValue, let fde = metadata.extensions.encryptionHeader,
           fde.length <= UInt64.max - fde.offset {
            self.encryptionHeaderRange = fde.offset..<(fde.offset + fde.length)
        } else {
            self.encryptionHeaderRange = nil
        }
        self.hasZeroFlag = h.version >= 3
        self.incompatible = Atomic(h.incompatibleFeatures)
        // Dirty L2 slices are written only after the refcount blocks they rely on, and after the
        // data they point at is durable (QEMU's qcow2_cache_set_dependency / depends_on_flush).
        map.cache.setDependency(refcounts.cache)
    }

    var cs: Int { geometry.clusterSize }

    /// Refuses writes once the image was found corrupt or closed.
    private func checkEnabled(_ offset: UInt64) throws {
        if disabled.load(ordering: .acquiring) {
            throw ImageError(path: path, offset: offset, structure: "write",
                             reason: "writing is disabled: the image was found corrupt or was closed", errno: .ioError)
        }
    }

    // MARK: Guest writes

    /// Writes `length` bytes at `offset`: from `data`, or zeros when `data` is nil (stored as zero
    /// clusters or subclusters where the image allows).
    func write(_ data: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        try checkEnabled(offset)
        do {
            try state.withLock { s in
                if s.closed { throw ImageError(path: path, structure: "write", reason: "image is closed", errno: .badFileDescriptor) }
                var pos = 0
                while pos < length {
                    pos += try writeRun(data, length: length, at: offset, pos: pos, state: &s)
                }
                if map.cache.dirtyCount > map.cache.capacity / 2 || refcounts.cache.dirtyCount > refcounts.cache.capacity / 2 {
                    try flushMetadata(&s)
                }
            }
        } catch {
            throw ImageError.wrap(error, path: path)
        }
    }

    /// Handles the write from `pos` for at most one L2 slice; returns the bytes handled.
    private func writeRun(_ data: UnsafeRawBufferPointer?, length: Int, at offset: UInt64, pos: Int,
                          state s: inout State) throws -> Int {
        let guest = offset + UInt64(pos)
        let clusterStart = guest & ~UInt64(cs - 1)
        let inCluster = Int(guest - clusterStart)
        let n = min(cs - inCluster, length - pos)
        let l2Offset = try prepareL2(for: guest, state: &s)
        let (sliceOffset, index) = map.slice(l2Offset: l2Offset, guestOffset: guest)
        let entry = try currentEntry(sliceOffset, index, guest)

        // Fast path: whole clusters of data that need new clusters, allocated together.
        if let data, inCluster == 0, n == cs, !inPlace(entry) {
            var count = 1
            while count < map.sliceEntries - index, pos + (count + 1) * cs <= length {
                let next = try currentEntry(sliceOffset, index + count, guest + UInt64(count * cs))
                if inPlace(next) { break }
                count += 1
            }
            let first = try refcounts.allocate(count: count, sink: self)
            let host = first << UInt64(geometry.clusterBits)
            try writeData(UnsafeRawBufferPointer(rebasing: data[pos..<(pos + count * cs)]), at: host, state: &s)
            try map.cache.update(at: sliceOffset) { slice in
                for j in 0..<count {
                    let old = try map.entry(in: UnsafeRawBufferPointer(slice), index + j, sliceOffset: sliceOffset,
                                            guest: guest + UInt64(j * cs))
                    release(old, state: &s)
                    store(slice, index + j, word: Qcow2L2Entry.encode(host: host + UInt64(j * cs), zero: false, copied: true),
                          allocated: .max, zero: 0)
                }
            }
            return count * cs
        }
        let part = data.map { UnsafeRawBufferPointer(rebasing: $0[pos..<(pos + n)]) }
        try writeCluster(clusterStart, inCluster..<(inCluster + n), part, entry: entry,
                         sliceOffset: sliceOffset, index: index, state: &s)
        return n
    }

    /// Whether the entry's cluster is ours alone (COPIED, uncompressed) and may be written in place.
    private func inPlace(_ e: Qcow2L2Entry) -> Bool {
        if case .compressed = e.kind { return false }
        return e.copied && e.hostCluster != nil
    }

    private func currentEntry(_ sliceOffset: UInt64, _ index: Int, _ guest: UInt64) throws -> Qcow2L2Entry {
        try map.cache.withTable(at: sliceOffset) { try map.entry(in: $0, index, sliceOffset: sliceOffset, guest: guest) }
    }

    /// Stores an entry (and, with extended L2, its bitmap) into a slice.
    private func store(_ slice: UnsafeMutableRawBufferPointer, _ index: Int, word: UInt64, allocated: UInt32, zero: UInt32) {
        let at = index * geometry.l2EntryBytes
        slice.storeBytes(of: word.bigEndian, toByteOffset: at, as: UInt64.self)
        if geometry.extendedL2 {
            slice.storeBytes(of: Qcow2L2Entry.encodeBitmap(allocated: allocated, zero: zero).bigEndian,
                             toByteOffset: at + 8, as: UInt64.self)
        }
    }

    /// Queues the host clusters an entry no longer uses for freeing after the next flush: a shared
    /// cluster (not COPIED) or the clusters a compressed one spans. Clusters held alone are kept.
    private func release(_ e: Qcow2L2Entry, state s: inout State) {
        switch e.kind {
        case .compressed(let d):
            let first = d.hostOffset >> UInt64(geometry.clusterBits)
            let last = (d.hostOffset + UInt64(max(d.length, 1)) - 1) >> UInt64(geometry.clusterBits)
            s.pendingFrees.append(first..<(last + 1))
        default:
            if let host = e.hostCluster, !e.copied {
                let c = host >> UInt64(geometry.clusterBits)
                s.pendingFrees.append(c..<(c + 1))
            }
        }
    }

    /// One cluster, partly or wholly, when the fast path does not apply.
    private func writeCluster(_ clusterStart: UInt64, _ range: Range<Int>, _ data: UnsafeRawBufferPointer?,
                              entry e: Qcow2L2Entry, sliceOffset: UInt64, index: Int, state s: inout State) throws {
        let g = geometry
        let clusterBytes = Int(min(UInt64(cs), image.size - clusterStart))
        let whole = range.lowerBound == 0 && range.upperBound >= clusterBytes
        let (oldAlloc, oldZero): (UInt32, UInt32) = {
            if case let .subclusters(_, a, z) = e.kind { return (a, z) }
            return (0, 0)
        }()
        // Subclusters the write covers entirely, and those it touches.
        let firstSub = range.lowerBound >> g.subclusterBits, lastSub = (range.upperBound - 1) >> g.subclusterBits
        var covered: UInt32 = 0, touched: UInt32 = 0
        if g.extendedL2 {
            for i in firstSub...lastSub {
                let bit = UInt32(1) << UInt32(i)
                touched |= bit
                let start = i << g.subclusterBits, end = min(start + g.subclusterSize, clusterBytes)
                if range.lowerBound <= start, range.upperBound >= end { covered |= bit }
            }
        }

        if data == nil {
            if g.extendedL2, touched == covered, !isCompressed(e) {
                // Zero subclusters: only the bitmap changes; the host cluster (if any) stays.
                try map.cache.update(at: sliceOffset) { slice in
                    store(slice, index, word: Qcow2L2Entry.encode(host: e.hostCluster ?? 0, zero: false, copied: e.copied),
                          allocated: oldAlloc & ~covered, zero: oldZero | covered)
                }
                return
            }
            if !g.extendedL2, whole, hasZeroFlag {
                // A zero cluster: keep a cluster held alone (QEMU's ZERO_ALLOC), give up anything else.
                let keep = inPlace(e) ? e.hostCluster! : 0
                try map.cache.update(at: sliceOffset) { slice in
                    store(slice, index, word: Qcow2L2Entry.encode(host: keep, zero: true, copied: keep != 0), allocated: 0, zero: 0)
                }
                if keep == 0 { release(e, state: &s) }
                return
            }
            if !g.extendedL2, !hasZeroFlag, image.backing == nil, case .unallocated = e.kind { return }
        }

        if inPlace(e), let host = e.hostCluster {
            if !g.extendedL2 {
                if case .zero = e.kind {
                    // A preallocated zero cluster: its bytes are stale; write all of it.
                    var buffer = [UInt8](repeating: 0, count: cs)
                    if let data { buffer.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: range.lowerBound).copyMemory(from: data.baseAddress!, byteCount: data.count) } }
                    try buffer.withUnsafeBytes { try writeData($0, at: host, state: &s) }
                    try map.cache.update(at: sliceOffset) { store($0, index, word: Qcow2L2Entry.encode(host: host, zero: false, copied: true), allocated: 0, zero: 0) }
                } else {
                    try writeBytes(data, count: range.count, at: host + UInt64(range.lowerBound), state: &s)
                }
                return
            }
            // Extended L2, cluster held alone: subclusters not yet allocated get their old
            // contents (backing file or zeros) around the new bytes.
            var alloc = oldAlloc, zero = oldZero
            for i in firstSub...lastSub {
                let bit = UInt32(1) << UInt32(i)
                let subStart = i << g.subclusterBits
                let lo = max(range.lowerBound, subStart), hi = min(range.upperBound, subStart + g.subclusterSize)
                let slice = data.map { UnsafeRawBufferPointer(rebasing: $0[(lo - range.lowerBound)..<(hi - range.lowerBound)]) }
                if alloc & bit != 0 || covered & bit != 0 {
                    try writeBytes(slice, count: hi - lo, at: host + UInt64(lo), state: &s)
                } else {
                    let subBytes = min(g.subclusterSize, clusterBytes - subStart)
                    var buffer = [UInt8](repeating: 0, count: g.subclusterSize)
                    if zero & bit == 0 {
                        try buffer.withUnsafeMutableBytes { try image.readBacking(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<subBytes]), at: clusterStart + UInt64(subStart)) }
                    }
                    buffer.withUnsafeMutableBytes { b in
                        if let slice { b.baseAddress!.advanced(by: lo - subStart).copyMemory(from: slice.baseAddress!, byteCount: slice.count) }
                        else { UnsafeMutableRawBufferPointer(rebasing: b[(lo - subStart)..<(hi - subStart)]).initializeMemory(as: UInt8.self, repeating: 0) }
                    }
                    try buffer.withUnsafeBytes { try writeData($0, at: host + UInt64(subStart), state: &s) }
                }
                alloc |= bit
                zero &= ~bit
            }
            try map.cache.update(at: sliceOffset) { store($0, index, word: Qcow2L2Entry.encode(host: host, zero: false, copied: true), allocated: alloc, zero: zero) }
            return
        }

        // Copy on write into a new cluster: the cluster's current contents (backing file,
        // compressed or shared cluster, zeros) around the new bytes (QEMU's perform_cow).
        var buffer = [UInt8](repeating: 0, count: cs)
        try buffer.withUnsafeMutableBytes { b in
            try image.read(into: UnsafeMutableRawBufferPointer(rebasing: b[..<clusterBytes]), at: clusterStart)
            let target = UnsafeMutableRawBufferPointer(rebasing: b[range])
            if let data { target.copyMemory(from: data) } else { target.initializeMemory(as: UInt8.self, repeating: 0) }
        }
        let host = try refcounts.allocate(count: 1, sink: self) << UInt64(g.clusterBits)
        try buffer.withUnsafeBytes { try writeData($0, at: host, state: &s) }
        var alloc = UInt32.max, zero = UInt32(0)
        if g.extendedL2, !isCompressed(e) {
            alloc = (e.hostCluster != nil ? oldAlloc : 0) | touched
            zero = oldZero & ~touched
        }
        try map.cache.update(at: sliceOffset) { store($0, index, word: Qcow2L2Entry.encode(host: host, zero: false, copied: true), allocated: alloc, zero: zero) }
        release(e, state: &s)
    }

    private func isCompressed(_ e: Qcow2L2Entry) -> Bool {
        if case .compressed = e.kind { return true }
        return false
    }

    /// Writes guest bytes (or zeros when `data` is nil) at a host offset.
    private func writeBytes(_ data: UnsafeRawBufferPointer?, count: Int, at host: UInt64, state s: inout State) throws {
        if let data { return try writeData(data, at: host, state: &s) }
        let zeros = [UInt8](repeating: 0, count: count)
        try zeros.withUnsafeBytes { try writeData($0, at: host, state: &s) }
    }

    /// Guest data to the file, after the overlap check (QEMU checks data writes too); encrypted
    /// first on encrypted images.
    private func writeData(_ bytes: UnsafeRawBufferPointer, at host: UInt64, state s: inout State) throws {
        try checkOverlap(host, bytes.count, .data)
        if let encryption = image.encryption {
            try writeEncrypted(bytes, at: host, encryption)
        } else {
            try file.writeExtending(bytes, at: host)
        }
        s.unsyncedData = true
        map.cache.setDependsOnFlush()
    }

    /// Scratch space for encrypting one data write, at most (the caller's bytes stay as they are).
    static let encryptionChunkBytes = 1 << 20

    /// Guest data of a LUKS image: encrypted per 512-byte sector with the IV of its host sector
    /// (QEMU's qcow2_co_encrypt with crypt_physical_offset), through a bounded scratch buffer.
    /// Bytes are always written at the same offset within the cluster as in the guest, and every
    /// allocation writes whole clusters or subclusters, so a write that covers a sector only
    /// partly lands in a sector written before: that sector is read, decrypted, patched and
    /// encrypted again (QEMU's sector-aligned requests never need this; the FUSE server's and
    /// libext2fs's 1 KiB writes on 512-byte sectors rarely do).
    private func writeEncrypted(_ bytes: UnsafeRawBufferPointer, at host: UInt64, _ encryption: Qcow2Encryption) throws {
        let sector = UInt64(Qcow2Encryption.sectorSize)
        let end = host + UInt64(bytes.count)
        let alignedStart = host / sector * sector, alignedEnd = (end + sector - 1) / sector * sector
        let scratch = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Int(min(alignedEnd - alignedStart, UInt64(Self.encryptionChunkBytes))), alignment: 16)
        defer {
            // Plaintext guest data; not key material, but no reason to leave it behind either.
            scratch.initializeMemory(as: UInt8.self, repeating: 0)
            scratch.deallocate()
        }
        var pos = alignedStart
        while pos < alignedEnd {
            let n = Int(min(UInt64(scratch.count), alignedEnd - pos))
            let chunk = UnsafeMutableRawBufferPointer(rebasing: scratch[..<n])
            let lo = max(pos, host), hi = min(pos + UInt64(n), end)
            // Partly covered first and last sectors: their current plaintext around the new bytes.
            var partial: [UInt64] = []
            if lo > pos { partial.append(pos) }
            if hi < pos + UInt64(n) { partial.append(pos + UInt64(n) - sector) }
            for s in Set(partial) {
                let part = UnsafeMutableRawBufferPointer(rebasing: chunk[Int(s - pos)..<Int(s - pos + sector)])
                try file.readPaddingPastEnd(into: part, at: s)
                encryption.decrypt(part, hostOffset: s, guestOffset: 0)   // LUKS: the IV is the host's
            }
            UnsafeMutableRawBufferPointer(rebasing: chunk[Int(lo - pos)..<Int(hi - pos)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[Int(lo - host)..<Int(hi - host)]))
            try encryption.encrypt(chunk, hostOffset: pos)
            try file.writeExtending(UnsafeRawBufferPointer(chunk), at: pos)
            pos += UInt64(n)
        }
    }

    /// The L2 table for `guest`, made ours: allocated when missing, copied when shared with a
    /// snapshot (L1 entry without COPIED). The L1 entry changes in memory only.
    private func prepareL2(for guest: UInt64, state s: inout State) throws -> UInt64 {
        let l1Index = geometry.l1Index(guest)
        let entry = map.l1Entry(l1Index)
        let old = entry & Qcow2.offsetMask
        if old != 0 {
            try map.checkL2TableOffset(old, l1Index: l1Index)
            if entry & Qcow2.copiedFlag != 0 { return old }
        }
        let table = try refcounts.allocate(count: 1, sink: self) << UInt64(geometry.clusterBits)
        var bytes = [UInt8](repeating: 0, count: cs)
        if old != 0 { try bytes.withUnsafeMutableBytes { try file.readPaddingPastEnd(into: $0, at: old) } }
        try bytes.withUnsafeBytes { try writeMetadata($0, at: table, structure: .activeL2) }
        s.unsyncedData = true
        var slice = table
        while slice < table + UInt64(cs) {
            map.cache.drop(slice)
            slice += UInt64(map.cache.entryBytes)
        }
        map.setL1Entry(l1Index, table | Qcow2.copiedFlag)
        s.dirtyL1.insert(l1Index)
        if old != 0 {
            let c = old >> UInt64(geometry.clusterBits)
            s.pendingFrees.append(c..<(c + 1))
        }
        return table
    }

    // MARK: Flush and close

    /// Makes every earlier write durable.
    func flush() throws {
        do {
            try state.withLock { s in
                if s.closed { return }
                try flushMetadata(&s)
            }
        } catch {
            throw ImageError.wrap(error, path: path)
        }
    }

    /// Data, then refcount blocks, then L2 slices, then L1 entries, each behind a barrier; then
    /// the clusters given up are freed and their blocks written.
    private func flushMetadata(_ s: inout State) throws {
        let writeL2: (UInt64, UnsafeRawBufferPointer) throws -> Void = { offset, bytes in
            try self.writeMetadata(bytes, at: offset, structure: .activeL2)
        }
        let writeBlock: (UInt64, UnsafeRawBufferPointer) throws -> Void = { offset, bytes in
            try self.writeMetadata(bytes, at: offset, structure: .refcountBlock)
        }
        let hadWork = s.unsyncedData || map.cache.dirtyCount > 0 || refcounts.cache.dirtyCount > 0
            || !s.dirtyL1.isEmpty || !s.pendingFrees.isEmpty
        if !hadWork { return }
        // The L2 cache declares both orderings: its refcount blocks first (with a barrier after
        // them), and a barrier before its own write-back when data was written meanwhile.
        try map.cache.flush(write: writeL2, barrier: barrier)
        // Refcount blocks with no L2 slice waiting (in-place writes, new tables), and the data.
        try refcounts.cache.flush(write: writeBlock, barrier: barrier)
        try barrier()
        s.unsyncedData = false
        if !s.dirtyL1.isEmpty {
            try barrier()
            for index in s.dirtyL1.sorted() {
                var be = map.l1Entry(index).bigEndian
                try withUnsafeBytes(of: &be) { try writeMetadata($0, at: l1Range.lowerBound + UInt64(index * 8), structure: .activeL1) }
            }
            s.dirtyL1 = []
        }
        try barrier()
        if !s.pendingFrees.isEmpty {
            for range in s.pendingFrees { try refcounts.add(-1, toClusters: range) }
            s.pendingFrees = []
            try refcounts.cache.flush(write: writeBlock, barrier: barrier)
            try barrier()
        }
    }

    /// Flushes, clears the dirty bit this writer set, and refuses further writes.
    func close() throws {
        try state.withLock { s in
            if s.closed { return }
            if !disabled.load(ordering: .acquiring) {
                try flushMetadata(&s)
                if s.setDirtyBit {
                    try setIncompatibleBits(clearing: Qcow2IncompatibleFeatures.dirty.rawValue)
                    s.setDirtyBit = false
                }
            }
            s.closed = true
        }
        disabled.store(true, ordering: .releasing)
    }

    // MARK: Header

    /// Sets the dirty bit durably before the first write of an image with lazy refcounts.
    func markDirty() throws {
        try setIncompatibleBits(setting: Qcow2IncompatibleFeatures.dirty.rawValue)
        state.withLock { $0.setDirtyBit = true }
    }

    /// Rewrites the incompatible features field (header bytes 72-79) durably.
    func setIncompatibleBits(setting: UInt64 = 0, clearing: UInt64 = 0) throws {
        let value = (incompatible.load(ordering: .acquiring) | setting) & ~clearing
        var be = value.bigEndian
        try withUnsafeBytes(of: &be) { try writeMetadata($0, at: 72, structure: .header) }
        try barrier()
        incompatible.store(value, ordering: .releasing)
    }

    /// Sets the corrupt bit (version 3 images) and stops all writing: the corruption hook.
    func markCorrupt() {
        if disabled.exchange(true, ordering: .acquiringAndReleasing) { return }
        guard hasZeroFlag else { return }
        let value = incompatible.load(ordering: .acquiring) | Qcow2IncompatibleFeatures.corrupt.rawValue
        var be = value.bigEndian
        _ = try? withUnsafeBytes(of: &be) { try file.writeExtending($0, at: 72) }
        _ = try? file.flush()
        incompatible.store(value, ordering: .releasing)
    }

    // MARK: Qcow2MetadataSink

    func writeMetadata(_ bytes: UnsafeRawBufferPointer, at offset: UInt64, structure: Qcow2MetadataStructure) throws {
        try checkOverlap(offset, bytes.count, structure)
        try file.writeExtending(bytes, at: offset)
    }

    func barrier() throws {
        try file.flush()
    }

    func refcountTableMoved(offset: UInt64, clusters: UInt32) throws {
        var bytes = [UInt8](repeating: 0, count: 12)
        bytes.withUnsafeMutableBytes { b in
            b.storeBytes(of: offset.bigEndian, toByteOffset: 0, as: UInt64.self)
            b.storeBytes(of: clusters.bigEndian, toByteOffset: 8, as: UInt32.self)
        }
        try bytes.withUnsafeBytes { try writeMetadata($0, at: 48, structure: .header) }
        try barrier()
    }

    /// Refuses a write that would land on metadata other than `structure` (QEMU's
    /// qcow2_pre_write_overlap_check with the "cached" checks): the header, the active L1 table,
    /// the refcount table and its blocks, active L2 tables, the snapshot table and snapshot L1 tables;
    /// and the LUKS header of an encrypted image.
    func checkOverlap(_ offset: UInt64, _ length: Int, _ structure: Qcow2MetadataStructure) throws {
        let range = offset..<(offset + UInt64(length))
        func hit(_ other: Range<UInt64>, _ what: Qcow2MetadataStructure) throws {
            guard what != structure, range.overlaps(other) else { return }
            throw corruption.signalCorruption(
                "preventing a write of \(structure.rawValue) at 0x\(hex(offset)) (\(length) bytes) that would overwrite the \(what.rawValue) at 0x\(hex(other.lowerBound))",
                structure: structure.rawValue, offset: offset, size: UInt64(length))
        }
        let c = UInt64(cs)
        try hit(0..<c, .header)
        try hit(l1Range, .activeL1)
        let (rtOffset, rtClusters) = refcounts.table.withLock { ($0.offset, $0.clusters) }
        try hit(rtOffset..<(rtOffset + UInt64(rtClusters) * c), .refcountTable)
        for r in snapshotRanges { try hit(r, .snapshotTable) }
        if let encryptionHeaderRange { try hit(encryptionHeaderRange, .encryptionHeader) }
        // Refcount blocks and active L2 tables are one cluster each: look the clusters the write
        // touches up in an index rebuilt only when the refcount table or L1 changed (walking both
        // tables on every 1 KiB data write made writing through a mount 80 times slower).
        let checkBlocks = structure == .data || structure == .activeL1 || structure == .header || structure == .snapshotTable
        let checkL2 = structure == .data || structure == .refcountBlock || structure == .refcountTable
        guard checkBlocks || checkL2, length > 0 else { return }
        let index = try metadataIndex()
        var cluster = offset / c * c
        while cluster < range.upperBound {
            if checkBlocks, index.refcountBlocks.contains(cluster) { try hit(cluster..<(cluster + c), .refcountBlock) }
            if checkL2, index.l2Tables.contains(cluster) { try hit(cluster..<(cluster + c), .activeL2) }
            cluster += c
        }
    }

    /// Cluster offsets of the refcount blocks and active L2 tables, for `checkOverlap`.
    struct MetadataIndex {
        var refcountBlocks: Set<UInt64> = []
        var l2Tables: Set<UInt64> = []
        var generations: (refcounts: UInt64, l1: UInt64) = (.max, .max)
    }
    private func metadataIndex() throws -> MetadataIndex {
        let generations = (refcounts.tableGeneration.load(ordering: .acquiring), map.l1Generation.load(ordering: .acquiring))
        if let current = overlapIndex.withLock({ $0.generations == generations ? $0 : nil }) { return current }
        var fresh = MetadataIndex()
        for e in try refcounts.tableEntries().entries where e & Qcow2.offsetMask != 0 { fresh.refcountBlocks.insert(e & Qcow2.offsetMask) }
        for e in map.l1 where e & Qcow2.offsetMask != 0 { fresh.l2Tables.insert(e & Qcow2.offsetMask) }
        fresh.generations = generations
        overlapIndex.withLock { $0 = fresh }
        return fresh
    }
}
