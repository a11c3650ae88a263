/// The logical blocks of a directory or attribute fork, mapped to filesystem blocks through
/// the fork's extent list ("XFS Algorithms & Data Structures" §16 "Data Extents": file block
/// `fileOffset + i` of an extent lives at filesystem block `startBlock + i`).
///
/// A directory block (`dirBlockSize`, several filesystem blocks with -n size > -b size) may be
/// split over extents that are not adjacent on disk, so reads go extent by extent. A logical
/// block no extent maps is a hole: directories and attribute forks have none where their own
/// structures point, so reading one is damage, as is an unwritten (preallocated) extent.
struct XFSForkMap {
    let extents: [XFSExtent]
    let geometry: XFSGeometry
    let read: XFSBlockReader
    /// "directory inode 131", "attribute fork of inode 131": the errors' structure.
    let owner: String

    init(extents: [XFSExtent], geometry: XFSGeometry, read: @escaping XFSBlockReader, owner: String) throws {
        // The inode reader hands extents over in file order; sort only a list that is not.
        let ordered = zip(extents, extents.dropFirst()).allSatisfy { $0.fileOffset <= $1.fileOffset }
        self.extents = ordered ? extents : extents.sorted { $0.fileOffset < $1.fileOffset }
        self.geometry = geometry
        self.read = read
        self.owner = owner
        var end: UInt64 = 0
        for (i, e) in self.extents.enumerated() {
            let (last, overflow) = e.fileOffset.addingReportingOverflow(e.blockCount)
            guard !overflow, e.blockCount > 0, i == 0 || e.fileOffset >= end else {
                throw ImageError(structure: owner, reason: "extent \(i) (file block \(e.fileOffset), \(e.blockCount) blocks) overlaps another or is empty",
                                 errno: .ioError)
            }
            end = last
        }
    }

    /// The extent holding logical block `block`, by binary search.
    func extent(containing block: UInt64) -> XFSExtent? {
        var lo = 0, hi = extents.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if extents[mid].fileOffset <= block { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let e = extents[lo - 1]
        return block - e.fileOffset < e.blockCount ? e : nil
    }

    /// The filesystem block that logical block `block` lives at.
    func physical(_ block: UInt64, structure: String) throws -> UInt64 {
        guard let e = extent(containing: block) else {
            throw ImageError(structure: structure, reason: "logical block \(block) of \(owner) is a hole", errno: .ioError)
        }
        guard !e.unwritten else {
            throw ImageError(structure: structure, reason: "logical block \(block) of \(owner) is in an unwritten extent", errno: .ioError)
        }
        let (fsb, overflow) = e.startBlock.addingReportingOverflow(block - e.fileOffset)
        guard !overflow else { throw ImageError(structure: structure, reason: "extent start overflows", errno: .ioError) }
        return fsb
    }

    /// `count` logical blocks from `block`, gathered piece by piece over the extents; with the
    /// filesystem block the first one lives at (v5 headers record its daddr).
    func readBlocks(_ block: UInt64, count: UInt32, structure: String) throws -> (bytes: [UInt8], firstFsblock: UInt64) {
        var out: [UInt8] = []
        out.reserveCapacity(Int(count) << Int(geometry.blockLog))
        var first: UInt64 = 0
        var done: UInt64 = 0
        while done < UInt64(count) {
            let (logical, overflow) = block.addingReportingOverflow(done)
            guard !overflow, let e = extent(containing: logical) else {
                throw ImageError(structure: structure, reason: "logical block \(block &+ done) of \(owner) is a hole", errno: .ioError)
            }
            guard !e.unwritten else {
                throw ImageError(structure: structure, reason: "logical block \(logical) of \(owner) is in an unwritten extent", errno: .ioError)
            }
            let run = min(e.blockCount - (logical - e.fileOffset), UInt64(count) - done)
            let (fsb, o2) = e.startBlock.addingReportingOverflow(logical - e.fileOffset)
            guard !o2 else { throw ImageError(structure: structure, reason: "extent start overflows", errno: .ioError) }
            if done == 0 { first = fsb }
            let piece: [UInt8]
            do { piece = try read(fsb, UInt32(run)) } catch {
                throw ImageError(structure: structure, reason: "cannot read logical block \(logical) of \(owner)", underlying: error)
            }
            guard piece.count == Int(run) << Int(geometry.blockLog) else {
                throw ImageError(structure: structure, reason: "short read of logical block \(logical) of \(owner)", errno: .ioError)
            }
            out += piece
            done += run
        }
        return (out, first)
    }
}
