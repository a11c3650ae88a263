import GuestFSBlock
import GuestFSFilesystem

/// The blocks of an internal journal, read through the journal inode's block map.
///
/// The map is taken from the filesystem as it is before replay, as the kernel and e2fsck do
/// (journal_bmap). Only the part that starts at logical block 0 and has no hole counts
/// (e2fsck's process_journal_block stops at the first block that is 0 or outside the
/// filesystem), and every mapped block is checked against the filesystem size here, once.
struct JournalLog {
    let device: any BlockDevice
    let blockSize: Int
    /// Logical runs from block 0 on, without holes, in order.
    let runs: [BlockRun]
    /// The same runs by physical start, to answer "is this filesystem block in the journal?".
    private let byPhysical: [BlockRun]
    /// How many journal blocks the map covers.
    let mappedBlocks: UInt64

    init(device: any BlockDevice, blockSize: Int, runs allRuns: [BlockRun], fsBlockCount: UInt64, firstDataBlock: UInt64) {
        var usable: [BlockRun] = []
        var next: UInt64 = 0
        for run in allRuns.sorted(by: { $0.logical < $1.logical }) {
            guard run.logical == next, !run.zeroed, run.count > 0, run.physical >= max(firstDataBlock, 1) else { break }
            let (end, overflow) = run.physical.addingReportingOverflow(run.count)
            guard !overflow else { break }
            if end > fsBlockCount {
                // Keep the part inside the filesystem; the map ends there.
                if run.physical < fsBlockCount {
                    usable.append(BlockRun(logical: run.logical, count: fsBlockCount - run.physical,
                                           physical: run.physical, zeroed: false))
                    next += fsBlockCount - run.physical
                }
                break
            }
            usable.append(run)
            next += run.count
        }
        self.device = device
        self.blockSize = blockSize
        self.runs = usable
        self.byPhysical = usable.sorted { $0.physical < $1.physical }
        self.mappedBlocks = next
    }

    /// The filesystem block holding journal block `index`, or nil past the map.
    func physicalBlock(_ index: UInt32) -> UInt64? {
        let target = UInt64(index)
        var low = 0, high = runs.count
        while low < high {
            let mid = (low + high) / 2
            if runs[mid].logical + runs[mid].count <= target { low = mid + 1 } else { high = mid }
        }
        guard low < runs.count, runs[low].logical <= target else { return nil }
        return runs[low].physical + (target - runs[low].logical)
    }

    /// The byte offset of journal block `index` on the device.
    func deviceOffset(_ index: UInt32) throws -> UInt64 {
        guard let physical = physicalBlock(index) else {
            throw ImageError(path: device.displayName, structure: "journal block \(index)",
                             reason: "outside the journal (\(mappedBlocks) blocks mapped)", errno: .ioError)
        }
        return physical * UInt64(blockSize)
    }

    /// Reads journal block `index` (jread).
    func read(_ index: UInt32) throws -> [UInt8] {
        try device.readBytes(at: try deviceOffset(index), count: blockSize)
    }

    /// Whether filesystem block `block` is one of the journal's own blocks.
    func contains(fsBlock block: UInt64) -> Bool {
        var low = 0, high = byPhysical.count
        while low < high {
            let mid = (low + high) / 2
            if byPhysical[mid].physical + byPhysical[mid].count <= block { low = mid + 1 } else { high = mid }
        }
        return low < byPhysical.count && byPhysical[low].physical <= block
    }
}
