import Synchronization

/// The read path: map the request, then read each extent from the data file, the backing image,
/// zeros, or decompressed clusters (several at once on the pool for large reads).
extension Qcow2Image {
    /// Part of a read that comes from one compressed cluster.
    private struct CompressedRead {
        var descriptor: Qcow2CompressedDescriptor
        var guestOffset: UInt64
        var offsetInCluster: Int
        var destination: UnsafeMutableRawBufferPointer
    }

    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        try checkRange(offset: offset, length: buffer.count)
        var compressed: [CompressedRead] = []
        var pos = 0
        while pos < buffer.count {
            let guest = offset + UInt64(pos)
            let extent = try map.map(guestOffset: guest, length: buffer.count - pos)
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[pos..<(pos + extent.length)])
            switch extent.kind {
            case .data(let host):
                if let encryption {
                    try readEncryptedData(into: part, host: host, guest: guest, encryption)
                } else if metadata.header.cryptMethod != Qcow2CryptMethod.none.rawValue {
                    throw ImageError(path: path, offset: guest, structure: "read",
                                     reason: "the image is encrypted and was opened for its metadata only", errno: .permissionDenied)
                } else {
                    try readData(into: part, at: host)
                }
            case .zero:
                part.initializeMemory(as: UInt8.self, repeating: 0)
            case .unallocated:
                try readBacking(into: part, at: guest)
            case .compressed(let descriptor):
                compressed.append(CompressedRead(descriptor: descriptor, guestOffset: guest,
                                                 offsetInCluster: map.geometry.offsetInCluster(guest), destination: part))
            }
            pos += extent.length
        }
        if !compressed.isEmpty { try readCompressed(compressed) }
    }

    /// Uncompressed guest data, from the external data file when there is one. A cluster that
    /// ends past the end of the file reads as zeros there, as QEMU's file driver does.
    private func readData(into part: UnsafeMutableRawBufferPointer, at host: UInt64) throws {
        try (dataFile ?? file).readPaddingPastEnd(into: part, at: host)
    }

    /// Reads of encrypted data from this size on are read and decrypted on the pool.
    static let parallelDecryptionMinBytes = 256 << 10

    /// Encrypted guest data: the 512-byte sectors covering the part are read and decrypted
    /// (Qcow2Encryption.swift). Clusters are at least 512 bytes and sector-aligned in both the
    /// guest and the host, so widening the part to whole sectors stays inside its clusters.
    private func readEncryptedData(into part: UnsafeMutableRawBufferPointer, host: UInt64, guest: UInt64,
                                   _ encryption: Qcow2Encryption) throws {
        let sector = UInt64(Qcow2Encryption.sectorSize)
        let head = guest % sector
        let end = (guest + UInt64(part.count) + sector - 1) / sector * sector
        if head == 0, end == guest + UInt64(part.count) {
            if part.count < Self.parallelDecryptionMinBytes {
                try readData(into: part, at: host)
                encryption.decrypt(part, hostOffset: host, guestOffset: guest)
                return
            }
            // Each thread of the pool reads its own run of sectors and decrypts it, so one run's
            // read from disk overlaps another's decryption (sequential read-then-decrypt left the
            // cipher idle during I/O: cold reads took 1.55x as long as plain ones, now 1.3x).
            let failure = Mutex<ImageError?>(nil)
            let sectors = part.count / Int(sector)
            Qcow2Compression.forEachInParallel(sectors) { range in
                let lower = range.lowerBound * Int(sector), upper = range.upperBound * Int(sector)
                let piece = UnsafeMutableRawBufferPointer(rebasing: part[lower..<upper])
                do {
                    try readData(into: piece, at: host + UInt64(lower))
                    encryption.decrypt(piece, hostOffset: host + UInt64(lower), guestOffset: guest + UInt64(lower), parallel: false)
                } catch {
                    let wrapped = ImageError.wrap(error, path: path)
                    failure.withLock { if $0 == nil { $0 = wrapped } }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            return
        }
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - (guest - head)), alignment: 16)
        defer { scratch.deallocate() }
        try readData(into: scratch, at: host - head)
        encryption.decrypt(scratch, hostOffset: host - head, guestOffset: guest - head)
        part.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[Int(head)..<(Int(head) + part.count)]))
    }

    /// Unallocated guest data: the backing image, zeros past its end or without one.
    func readBacking(into part: UnsafeMutableRawBufferPointer, at guest: UInt64) throws {
        guard let backing else {
            part.initializeMemory(as: UInt8.self, repeating: 0)
            return
        }
        try backing.readPaddingPastEnd(into: part, at: guest)
    }

    /// Decompresses the compressed parts of one read, on the pool when there are enough of them.
    /// The first failure is thrown after all work has finished.
    private func readCompressed(_ reads: [CompressedRead]) throws {
        if reads.count < Self.parallelDecompressionMinClusters {
            try decompressGroup(reads[...])
            return
        }
        let failure = Mutex<ImageError?>(nil)
        Qcow2Compression.forEachInParallel(reads.count) { range in
            do { try decompressGroup(reads[range]) } catch {
                let wrapped = ImageError.wrap(error, path: path)
                failure.withLock { if $0 == nil { $0 = wrapped } }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Reads the compressed bytes of neighbouring clusters with one read when they lie close
    /// together (as after `qemu-img convert -c`), else one read per cluster; then decompresses.
    private func decompressGroup(_ reads: ArraySlice<CompressedRead>) throws {
        let fileSize = metadata.fileSize
        func hostRange(_ r: CompressedRead) -> Range<UInt64> {
            let start = r.descriptor.hostOffset
            return start..<min(fileSize, start + UInt64(r.descriptor.length))
        }
        let spanStart = reads.map { hostRange($0).lowerBound }.min() ?? 0
        let spanEnd = reads.map { hostRange($0).upperBound }.max() ?? 0
        let needed = reads.reduce(UInt64(0)) { $0 + UInt64(hostRange($1).count) }
        let span = spanEnd - spanStart
        if reads.count > 1, span <= UInt64(Self.maxCoalescedCompressedRead),
           span <= 2 * needed + UInt64(map.geometry.clusterSize) {
            var bytes = [UInt8](repeating: 0, count: Int(span))
            try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: spanStart) }
            try bytes.withUnsafeBytes { all in
                for r in reads {
                    let range = hostRange(r)
                    let lower = Int(range.lowerBound - spanStart)
                    try decompress(r, from: UnsafeRawBufferPointer(rebasing: all[lower..<(lower + range.count)]))
                }
            }
        } else {
            for r in reads {
                let range = hostRange(r)
                var bytes = [UInt8](repeating: 0, count: range.count)
                try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: range.lowerBound) }
                try bytes.withUnsafeBytes { try decompress(r, from: $0) }
            }
        }
    }

    /// One compressed cluster: straight into the destination when the read covers all of it,
    /// else through the cache of decompressed clusters.
    private func decompress(_ r: CompressedRead, from input: UnsafeRawBufferPointer) throws {
        let type = metadata.compressionType
        let inflate = { (output: UnsafeMutableRawBufferPointer) throws in
            do { try Qcow2Compression.decompress(type, input, into: output) } catch {
                throw self.corruption.signalCorruption(
                    "\(type.name) cluster for guest offset 0x\(hex(r.guestOffset)) does not decompress: \(error)",
                    structure: "compressed cluster", offset: r.descriptor.hostOffset, size: UInt64(r.descriptor.length))
            }
        }
        if r.offsetInCluster == 0, r.destination.count == map.geometry.clusterSize {
            try inflate(r.destination)
            return
        }
        try decompressed.withTable(at: r.descriptor.hostOffset, load: { _, cluster in try inflate(cluster) }) { cluster in
            r.destination.copyMemory(from: UnsafeRawBufferPointer(
                rebasing: cluster[r.offsetInCluster..<(r.offsetInCluster + r.destination.count)]))
        }
    }
}

extension BlockDevice {
    /// Reads like `read(into:at:)`, but the part of the range past `size` reads as zeros
    /// (qcow2 spec, "Cluster mapping": a backing file smaller than the image reads as zeros past its end).
    func readPaddingPastEnd(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        guard offset < size else { buffer.initializeMemory(as: UInt8.self, repeating: 0); return }
        let inside = Int(min(UInt64(buffer.count), size - offset))
        try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<inside]), at: offset)
        if inside < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[inside...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }
}
