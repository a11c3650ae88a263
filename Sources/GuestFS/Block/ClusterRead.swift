/// The read loop of the formats that map fixed-size guest clusters through tables and keep no
/// sub-cluster state (qcow v1, QED, Parallels): each cluster's bytes come from the image file,
/// read as zeros, come from the backing file, or are inflated from a compressed cluster.
/// Clusters that follow each other on the host are read in one call, and so are runs of
/// clusters that all come from the backing file.
enum ClusterRead {
    /// Where one guest cluster's bytes are.
    enum Source: Equatable {
        /// At this host offset (the cluster's first byte) of the image file.
        case data(UInt64)
        /// Zeros (QED's zero clusters).
        case zero
        /// The backing file's bytes at the same guest offset; zeros without one or past its end.
        case backing
        /// A compressed cluster, by the table entry that describes it.
        case compressed(UInt64)
    }

    /// Fills `buffer` with guest bytes from `offset`. `map` answers for one cluster index;
    /// `inflate` fills the part of a compressed cluster from byte `within` on. Data past the end of the file
    /// reads as zeros, as QEMU's file protocol reads it (block/io.c pads reads past EOF).
    /// `readData`, when given, reads each run of data clusters instead (the bytes at host offset
    /// `host`, guest offset `guest`): qcow's legacy AES decrypts there. Runs start and end at
    /// cluster boundaries or at the ends of `buffer`.
    static func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, clusterSize: UInt64,
                     file: any BlockDevice, backing: (any BlockDevice)?,
                     map: (_ cluster: UInt64) throws -> Source,
                     readData: ((_ chunk: UnsafeMutableRawBufferPointer, _ host: UInt64, _ guest: UInt64) throws -> Void)? = nil,
                     inflate: (_ entry: UInt64, _ within: Int, _ into: UnsafeMutableRawBufferPointer) throws -> Void = { _, _, _ in
                         preconditionFailure("this format has no compressed clusters")
                     }) throws {
        var done = 0
        while done < buffer.count {
            let guest = offset + UInt64(done)
            let cluster = guest / clusterSize
            let within = guest % clusterSize
            var run = Int(min(UInt64(buffer.count - done), clusterSize - within))
            let source = try map(cluster)
            // Later clusters join the run while they continue it (next host cluster, or backing again).
            func extend(_ continues: (Source, UInt64) -> Bool) throws {
                var next = cluster + 1
                var step: UInt64 = 1
                while done + run < buffer.count, continues(try map(next), step) {
                    run += Int(min(UInt64(buffer.count - done - run), clusterSize))
                    next += 1
                    step += 1
                }
            }
            switch source {
            case let .data(host):
                guard host <= UInt64.max - clusterSize * 2 else {
                    throw ImageError(path: file.displayName, structure: "cluster map",
                                     reason: "cluster \(cluster) is mapped to host offset 0x\(String(host, radix: 16)), past any file")
                }
                try extend { next, step in
                    guard case let .data(h) = next else { return false }
                    let (wanted, overflow) = host.addingReportingOverflow(step * clusterSize)
                    return !overflow && h == wanted
                }
                let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
                if let readData { try readData(chunk, host + within, guest) } else { try file.readZeroPaddedPast(into: chunk, at: host + within) }
            case .zero:
                UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run]).initializeMemory(as: UInt8.self, repeating: 0)
            case .backing:
                try extend { next, _ in next == .backing }
                let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
                if let backing { try backing.readZeroPaddedPast(into: chunk, at: guest) } else { chunk.initializeMemory(as: UInt8.self, repeating: 0) }
            case let .compressed(entry):
                let chunk = UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run])
                try inflate(entry, Int(within), chunk)
            }
            done += run
        }
    }
}
