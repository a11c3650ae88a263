/// Writing a VMDK image, as QEMU's vmdk_pwritev and vmdk_pwrite_zeroes do: flat extents are
/// written in place; in a sparse extent a write to an allocated grain goes in place and a write
/// to an unallocated or zeroed grain allocates a new grain (`VmdkSparseWriter`), holding the
/// written bytes over the parent's (an unallocated grain of a child) or over zeros. The first
/// write of each open gives the descriptor a new CID (QEMU's vmdk_write_cid), so that children
/// made over the old contents see that their parent changed.
///
/// Zeros (`buffer` nil): with the header's zeroed-grain flag, a whole grain becomes the zeroed
/// marker in its table entry (QEMU's VMDK_GTE_ZEROED); otherwise they are written like data,
/// except into grains that read as zeros already (unallocated without a parent, or zeroed).
extension VmdkImage: AppendingFormatWriter {
    func writeLocked(_ buffer: UnsafeRawBufferPointer?, length: Int, at offset: UInt64) throws {
        try updateCID()
        var done = 0
        var index = extentIndex(containing: offset)
        while done < length {
            let guest = offset + UInt64(done)
            guard index < extents.count else {
                throw ImageError(path: path, offset: guest, structure: "write", reason: "no extent holds this offset", errno: .ioError)
            }
            let extent = extents[index]
            let within = guest - extent.start
            let n = Int(min(UInt64(length - done), extent.length - within))
            let part = buffer.map { UnsafeRawBufferPointer(rebasing: $0[done ..< done + n]) }
            switch extent.storage {
            case let .flat(file, offset: base):
                try Self.withBytes(part, length: n) { try file.write($0, at: base + within + UInt64($1)) }
            case let .sparse(sparse):
                guard let writer = extent.writer else { throw readOnlyError(offset: guest) }
                try writeSparse(sparse, writer, part, length: n, within: within, guest: guest)
            }
            done += n
            index += 1
        }
    }

    /// `length` bytes at byte `within` of `sparse` (guest byte `guest`), grain by grain.
    private func writeSparse(_ sparse: VmdkSparseExtent, _ writer: VmdkSparseWriter, _ data: UnsafeRawBufferPointer?,
                             length: Int, within: UInt64, guest: UInt64) throws {
        var done = 0
        while done < length {
            let at = within + UInt64(done)
            let inGrain = at % sparse.grainBytes
            let n = Int(min(UInt64(length - done), sparse.grainBytes - inGrain))
            let part = data.map { UnsafeRawBufferPointer(rebasing: $0[done ..< done + n]) }
            let grain = try sparse.grain(at: at)
            let wholeGrain = inGrain == 0 && UInt64(n) == sparse.grainBytes
            if part == nil, sparse.header.hasZeroedGrain, wholeGrain {
                // As QEMU: the entry becomes the zeroed marker, whatever it was (an allocated
                // grain is left unnamed: leaked space).
                if grain != .zero { try writer.setEntry(at, VmdkFormat.zeroedGTE) }
                done += n
                continue
            }
            switch grain {
            case let .data(host):
                guard host >= writer.dataStart else {
                    throw ImageError(path: sparse.file.displayName, offset: host, structure: "VMDK grain table entry",
                                     reason: "grain of extent byte \(at) lies inside the metadata (before sector \(sparse.header.grainOffset)): not written",
                                     errno: .ioError)
                }
                try Self.withBytes(part, length: n) { try writer.file.writeExtending($0, at: host + inGrain + UInt64($1)) }
            case .compressed:
                throw ImageError(path: sparse.file.displayName, offset: at, structure: "VMDK image", reason: Self.streamRefusal, errno: .readOnlyFileSystem)
            case .zero, .unallocated:
                if part == nil, grain == .zero || parent == nil {
                    // Reads as zeros already.
                } else {
                    // The grain as it reads now (the parent's bytes, or zeros), this write over it.
                    var bytes = [UInt8](repeating: 0, count: Int(sparse.grainBytes))
                    let grainGuest = guest + UInt64(done) - inGrain
                    try bytes.withUnsafeMutableBytes { out in
                        if grain == .unallocated, parent != nil { try readParent(into: out, at: grainGuest) }
                        let target = UnsafeMutableRawBufferPointer(rebasing: out[Int(inGrain) ..< Int(inGrain) + n])
                        if let part { target.copyMemory(from: part) } else { target.initializeMemory(as: UInt8.self, repeating: 0) }
                    }
                    try writer.allocate(at - inGrain, grain: bytes)
                }
            }
            done += n
        }
    }

    /// Gives the descriptor a new random CID, once per open, before the first write changes
    /// anything: the digits are replaced in place, as many as there were (QEMU rewrites the
    /// whole descriptor, and truncates a standalone one to the 512 bytes it read).
    private func updateCID() throws {
        guard !cidUpdated.withLock({ $0 }) else { return }
        let text = try file.readBytes(at: metadata.descriptorOffset, count: metadata.descriptorLength)
        if let digits = VmdkDescriptor.cidDigits(in: text) {
            let cid = UInt32.random(in: 0 ... .max)
            try file.writeBytes(VmdkDescriptor.cidText(cid, width: digits.count), at: metadata.descriptorOffset + UInt64(digits.lowerBound))
            try file.flush()
        }
        cidUpdated.withLock { $0 = true }
    }

    /// `body(bytes, at)` with `buffer` at 0, or with as many zeros, at most 1 MiB at a time.
    private static func withBytes(_ buffer: UnsafeRawBufferPointer?, length: Int, _ body: (UnsafeRawBufferPointer, Int) throws -> Void) throws {
        if let buffer { try body(buffer, 0); return }
        let zeros = [UInt8](repeating: 0, count: min(length, 1 << 20))
        var done = 0
        while done < length {
            let n = min(zeros.count, length - done)
            try zeros.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[..<n]), done) }
            done += n
        }
    }

    /// Makes earlier writes durable: each sparse extent's grains, then its tables
    /// (`VmdkSparseWriter.flush`); flat extent files synced.
    func flush() throws {
        guard isWritable else { return }
        try writeLock.withLock {
            for extent in extents {
                if let writer = extent.writer {
                    try writer.flush()
                } else if case let .flat(file, _) = extent.storage {
                    try file.flush()
                }
            }
        }
    }
}
