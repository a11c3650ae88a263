import GuestFSBlock
import GuestFSFilesystem

/// An open regular file of a `VfatFilesystem`. Each read resolves the clusters it covers under
/// the filesystem's lock, then reads them from the device without it, so reads run in parallel.
/// FAT files have no holes: `dataRanges` is the whole file.
final class VfatFile: GuestFile, @unchecked Sendable {
    // @unchecked: both are immutable; the filesystem guards its own state.
    let filesystem: VfatFilesystem
    let node: UInt64

    init(filesystem: VfatFilesystem, node: UInt64) {
        self.filesystem = filesystem
        self.node = node
    }

    var size: UInt64 { (try? filesystem.attributes(node).size) ?? 0 }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        let runs = try filesystem.dataRuns(node, at: offset, length: buffer.count)
        var done = 0
        for run in runs {
            try filesystem.device.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done ..< done + run.length]),
                                       at: run.deviceOffset)
            done += run.length
        }
        return done
    }

    func dataRanges() throws -> [(offset: UInt64, length: UInt64)] {
        let size = try filesystem.attributes(node).size
        return size == 0 ? [] : [(offset: UInt64(0), length: size)]
    }
}

extension VfatFilesystem {
    /// Where the bytes `[offset, offset+length)` of file `node` are, clipped to its size, as
    /// device runs (consecutive clusters merged).
    func dataRuns(_ node: UInt64, at offset: UInt64, length: Int) throws -> [(deviceOffset: UInt64, length: Int)] {
        try locked { s in
            let (e, _) = try entry(node, &s)
            guard !e.isDirectory else { throw error(.isDirectory, "node \(node)", "is a directory") }
            let size = UInt64(e.size)
            guard offset < size, length > 0 else { return [] }
            let end = min(size, offset + UInt64(length))
            let cs = UInt64(boot.clusterSize)
            let needed = Int((end + cs - 1) / cs)
            let chain = try fileChain(node, e, &s)
            guard chain.count >= needed else {
                throw error(.ioError, "node \(node)", "cluster chain of \(chain.count) clusters is shorter than the size \(size)")
            }
            var runs: [(deviceOffset: UInt64, length: Int)] = []
            var pos = offset
            while pos < end {
                let index = Int(pos / cs), within = pos % cs
                let n = min(cs - within, end - pos)
                let at = boot.offset(ofCluster: chain[index]) + within
                if let last = runs.last, last.deviceOffset + UInt64(last.length) == at {
                    runs[runs.count - 1].length += Int(n)
                } else {
                    runs.append((at, Int(n)))
                }
                pos += n
            }
            return runs
        }
    }
}

extension VfatFilesystem {
    /// The whole cluster chain of node `node` (whose entry is `e`), kept between calls; writers
    /// update or drop it (`s.chains`) whenever they change the chain.
    func fileChain(_ node: UInt64, _ e: VfatShortEntry, _ s: inout State) throws -> [UInt32] {
        if let chain = s.chains[node], chain.first == (e.firstCluster == 0 ? nil : e.firstCluster) { return chain }
        let chain = try s.table.chain(from: e.firstCluster, device: device.displayName)
        if s.chains.count >= 64 { s.chains.removeAll() }
        s.chains[node] = chain
        return chain
    }
}
