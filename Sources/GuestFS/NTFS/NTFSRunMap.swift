import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g

/// Where the bytes of a plain non-resident $DATA attribute live on the device, taken once from
/// libntfs-3g's runlist (under the library lock) so that reads can go to the block device
/// without it: libntfs-3g is not thread-safe, and ntfs_attr_pread under one lock serialises
/// every FUSE read of every file (DESIGN.md §1; Ext2File does the same for ext extents).
///
/// Only what ntfs_attr_pread (attrib.c) itself reads straight from clusters is mapped: a
/// non-resident, uncompressed, unencrypted attribute (sparse is fine: its LCN_HOLE runs read
/// as zeros). Resident data, compression units and EFS data stay with libntfs-3g, and so does
/// any runlist that is odd in any way (a gap, a run past the device, an unmapped part, a size
/// out of order): libntfs-3g then decides, with its own errors, exactly as before.
///
/// Bytes at or past initialized_size read as zeros up to data_size without touching the
/// device, as ntfs_attr_pread does ("Zero the uninitialized area"); the runlist is needed
/// only below initialized_size, so only that part is mapped and checked.
struct NTFSRunMap: Sendable, Equatable {
    /// One stretch of the file: `length` bytes from file offset `start`, at `deviceOffset` on
    /// the volume's device, or zeros (a hole) when nil.
    struct Run: Sendable, Equatable {
        let start: UInt64
        let length: UInt64
        let deviceOffset: UInt64?
        var end: UInt64 { start + length }
    }

    /// Sorted, contiguous from 0 and covering [0, initializedSize) exactly.
    let runs: [Run]
    let dataSize: UInt64
    let initializedSize: UInt64

    /// Past this many runs (1.5 MiB of map per open file) a file stays with ntfs_attr_pread:
    /// one open file may not pin an unbounded map built from hostile mapping pairs.
    static let maxRuns = 1 << 16

    /// Why a map was not made: the attribute stays with libntfs-3g.
    enum Refusal: Error, Equatable, Sendable {
        case notPlain          // resident, compressed or encrypted
        case sizes             // initialized_size > data_size, or a negative size
        case unmapped          // ntfs_attr_map_whole_runlist failed
        case badRunlist        // a gap, an overlap, an odd LCN, overflow, or past the device
        case tooManyRuns
    }

    /// The map of `na` (under the library lock), or why there is none. `clusterSize` is the
    /// volume's; every run must lie inside the first `deviceSize` bytes of the device.
    static func make(_ na: UnsafeMutablePointer<ntfs_attr>, clusterSize: UInt32, deviceSize: UInt64) -> Result<NTFSRunMap, Refusal> {
        guard cntfs3g_attr_non_resident(na) != 0, NAttrCompressed(na) == 0, NAttrEncrypted(na) == 0 else {
            return .failure(.notPlain)
        }
        let a = na.pointee
        guard a.data_size >= 0, a.initialized_size >= 0, a.initialized_size <= a.data_size else { return .failure(.sizes) }
        let dataSize = UInt64(a.data_size), initialized = UInt64(a.initialized_size)
        guard initialized > 0 else { return .success(NTFSRunMap(runs: [], dataSize: dataSize, initializedSize: 0)) }
        guard ntfs_attr_map_whole_runlist(na) == 0, let first = na.pointee.rl else { return .failure(.unmapped) }
        var elements: [(vcn: Int64, lcn: Int64, length: Int64)] = []
        var rl = first
        // The runlist ends with a zero-length element (runlist.h); the walk is bounded anyway.
        while rl.pointee.length != 0 {
            guard elements.count <= maxRuns else { return .failure(.tooManyRuns) }
            elements.append((rl.pointee.vcn, rl.pointee.lcn, rl.pointee.length))
            rl += 1
        }
        return build(elements, clusterSize: UInt64(clusterSize), dataSize: dataSize, initializedSize: initialized, deviceSize: deviceSize)
    }

    /// The checks and the arithmetic of `make`, on runlist elements (VCN, LCN, length in
    /// clusters; LCN -1 is LCN_HOLE) as libntfs-3g gives them: pure, so tests can feed it
    /// hostile runlists directly.
    static func build(_ elements: [(vcn: Int64, lcn: Int64, length: Int64)], clusterSize: UInt64,
                      dataSize: UInt64, initializedSize: UInt64, deviceSize: UInt64) -> Result<NTFSRunMap, Refusal> {
        guard initializedSize <= dataSize else { return .failure(.sizes) }
        guard clusterSize > 0 else { return .failure(.badRunlist) }
        var runs: [Run] = []
        var nextVCN: Int64 = 0
        var covered: UInt64 = 0
        for element in elements {
            guard covered < initializedSize else { break }
            guard runs.count < maxRuns else { return .failure(.tooManyRuns) }
            // Each element starts where the last ended (ntfs_mapping_pairs_decompress builds
            // them so; anything else is a runlist we do not understand).
            guard element.vcn == nextVCN, element.length > 0 else { return .failure(.badRunlist) }
            let (next, o0) = element.vcn.addingReportingOverflow(element.length)
            let (start, o1) = UInt64(element.vcn).multipliedReportingOverflow(by: clusterSize)
            let (bytes, o2) = UInt64(element.length).multipliedReportingOverflow(by: clusterSize)
            guard !o0, !o1, !o2, start == covered else { return .failure(.badRunlist) }
            nextVCN = next
            // Only the part below initialized_size is read from the device.
            let length = min(bytes, initializedSize - start)
            var deviceOffset: UInt64?
            if element.lcn >= 0 {
                let (at, o3) = UInt64(element.lcn).multipliedReportingOverflow(by: clusterSize)
                let (end, o4) = at.addingReportingOverflow(length)
                guard !o3, !o4, end <= deviceSize else { return .failure(.badRunlist) }
                deviceOffset = at
            } else if element.lcn != Int64(LCN_HOLE.rawValue) {
                // LCN_RL_NOT_MAPPED, LCN_ENOENT…: not data we can place.
                return .failure(.badRunlist)
            }
            // Runs that follow each other on the device are one read.
            if let last = runs.last, last.end == start,
               (last.deviceOffset == nil && deviceOffset == nil)
                || (last.deviceOffset.map { $0 + last.length } == deviceOffset && deviceOffset != nil) {
                runs[runs.count - 1] = Run(start: last.start, length: last.length + length, deviceOffset: last.deviceOffset)
            } else {
                runs.append(Run(start: start, length: length, deviceOffset: deviceOffset))
            }
            covered = start + length
        }
        // A runlist that stops short of initialized_size: ntfs_attr_pread fails there (EIO);
        // let it.
        guard covered == initializedSize else { return .failure(.badRunlist) }
        return .success(NTFSRunMap(runs: runs, dataSize: dataSize, initializedSize: initializedSize))
    }

    /// The index of the run holding file offset `offset` (< initializedSize).
    func runIndex(_ offset: UInt64) -> Int {
        var low = 0, high = runs.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if runs[mid].start <= offset { low = mid } else { high = mid - 1 }
        }
        return low
    }

    /// Reads up to `buffer.count` bytes at `offset` from `device`, without any lock: holes and
    /// everything from initializedSize to dataSize are zeros, nothing past dataSize is read.
    /// A device error is rethrown with the record and the file offset it was for.
    func read(_ device: any BlockDevice, node: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard offset < dataSize, buffer.count > 0, let base = buffer.baseAddress else { return 0 }
        let wanted = Int(min(UInt64(buffer.count), dataSize - offset))
        var done = 0
        var index = offset < initializedSize ? runIndex(offset) : runs.count
        while done < wanted {
            let position = offset + UInt64(done)
            let out = UnsafeMutableRawBufferPointer(start: base + done, count: wanted - done)
            guard position < initializedSize, index < runs.count else {
                out.initializeMemory(as: UInt8.self, repeating: 0)
                done = wanted
                break
            }
            let run = runs[index]
            let n = Int(min(UInt64(out.count), run.end - position))
            let part = UnsafeMutableRawBufferPointer(start: out.baseAddress, count: n)
            if let at = run.deviceOffset {
                do {
                    try device.read(into: part, at: at + (position - run.start))
                } catch {
                    throw ImageError(path: device.displayName, offset: at + (position - run.start),
                                     structure: "\(NTFSFilesystem.recordName(node)) $DATA at \(position)",
                                     reason: "cannot read the file's clusters", errno: .ioError, underlying: error)
                }
            } else {
                part.initializeMemory(as: UInt8.self, repeating: 0)
            }
            done += n
            index += 1
        }
        return done
    }
}
