import GuestFSBlock
import GuestFSFilesystem
import GuestFS
#if canImport(Glibc)
import Glibc
#endif

/// What may differ between two guests' trees when the second guest's drives are the first's
/// plus known changed byte ranges (`OverlayChanges`): per mounted filesystem, the nodes whose
/// record may differ and the directories that lead to them (FilesystemChangeScope).
struct DiffScope {
    /// Per mount index: the filesystem's answer.
    let mounts: [FilesystemChangeScope]

    /// Whether `node` (the same node in both trees) may have a different record or listing.
    func mayDiffer(_ node: GuestNode) -> Bool { mounts[node.mount].nodes.contains(node.inode) }

    /// Whether a walk must enter directory `node` to meet every record that may differ.
    func leadsToChange(_ node: GuestNode) -> Bool { mounts[node.mount].directories.contains(node.inode) }

    var summary: String {
        mounts.enumerated().map { "mount \($0.offset): \($0.element.nodes.count) node(s) may differ, \($0.element.directories.count) directories lead to them" }
            .joined(separator: "; ")
    }

    /// Asks each mounted filesystem of the second tree which of its nodes the changed ranges
    /// can touch. Nil (walk everything) unless both trees mount the same devices at the same
    /// places, each filesystem lies on a drive or a partition of one (a fixed window: LVM
    /// and LUKS map bytes elsewhere), and every driver can tell.
    static func make(first: MountTree, second: MountTree, firstGuest: Guest, secondGuest: Guest,
                     changes: OverlayChanges, content: Bool) throws -> DiffScope? {
        guard first.mounts.count == second.mounts.count else { return nil }
        var scopes: [FilesystemChangeScope] = []
        for (index, (a, b)) in zip(first.mounts, second.mounts).enumerated() {
            guard a.mountpoint == b.mountpoint, a.deviceName == b.deviceName,
                  let whereA = window(of: a.filesystem.device, in: firstGuest),
                  let whereB = window(of: b.filesystem.device, in: secondGuest),
                  whereA == whereB, whereB.drive < changes.ranges.count,
                  let fs = b.filesystem as? any ChangeScopingFilesystem else { return nil }
            // The drive's changed ranges that fall in this filesystem's window, made relative to it.
            let window = whereB.start..<(whereB.start + whereB.size)
            let ranges = changes.ranges[whereB.drive].compactMap { r -> Range<UInt64>? in
                let lo = max(r.lowerBound, window.lowerBound), hi = min(r.upperBound, window.upperBound)
                return lo < hi ? (lo - window.lowerBound)..<(hi - window.lowerBound) : nil
            }
            // The directories other filesystems are mounted on must be reached too.
            let reach = Set(second.mounts.compactMap { $0.covers }.filter { $0.mount == index }.map(\.inode))
            guard let scope = try fs.changeScope(comparedWith: a.filesystem, differing: ranges, content: content, reach: reach) else {
                return nil
            }
            scopes.append(scope)
        }
        return DiffScope(mounts: scopes)
    }

    struct Window: Equatable {
        let drive: Int
        let start: UInt64
        let size: UInt64
    }

    /// Where `device` lies on the guest's drives: a drive itself, or a slice (a partition) of one.
    static func window(of device: any BlockDevice, in guest: Guest) -> Window? {
        for (index, drive) in guest.drives.enumerated() {
            if device === drive.device { return Window(drive: index, start: 0, size: device.size) }
            if let slice = device as? SliceDevice, slice.base === drive.device {
                return Window(drive: index, start: slice.start, size: slice.size)
            }
        }
        return nil
    }
}

/// The byte ranges in which the second guest's drives may differ from the first's, from the
/// qcow2 allocation maps: when a drive of one guest and the same drive of the other reach one
/// image file through their backing chains (the template itself, or a base both share), only
/// what the qcow2 layers above that file allocate can differ (qcow2 spec: a cluster an image
/// does not allocate reads from its backing file).
struct OverlayChanges {
    /// Per drive index: the ranges, sorted, possibly touching.
    let ranges: [[Range<UInt64>]]

    /// Nil when a pair of drives shares no image file, a layer above the shared one is not
    /// qcow2, or the maps cannot be read.
    static func find(first: Guest, second: Guest) -> OverlayChanges? {
        guard first.drives.count == second.drives.count else { return nil }
        var all: [[Range<UInt64>]] = []
        for (a, b) in zip(first.drives, second.drives) {
            guard a.device.size == b.device.size, let ranges = differing(a.device, b.device),
                  let narrowed = try? narrow(ranges, a.device, b.device) else {
                Diagnostics.trace("diff: \(b.device.displayName) is not an overlay of \(a.device.displayName)'s chain: full walk")
                return nil
            }
            Diagnostics.trace("diff: \(b.device.displayName): \(ranges.reduce(0) { $0 + $1.count }) bytes allocated above the shared image, \(narrowed.reduce(0) { $0 + $1.count }) of them differ")
            all.append(narrowed)
        }
        return OverlayChanges(ranges: all)
    }

    /// A device's backing chain, from itself down: each layer with the host file it reads.
    static func chain(_ device: any BlockDevice) -> [(device: any BlockDevice, file: FileIdentity?)] {
        var out: [(device: any BlockDevice, file: FileIdentity?)] = []
        var layer: (any BlockDevice)? = device
        while let current = layer, out.count < 64 {
            if let q = current as? Qcow2Image {
                out.append((current, FileIdentity(path: q.path)))
                layer = q.backing
            } else if let raw = current as? RawImage {
                out.append((current, FileIdentity(path: raw.path)))
                layer = nil
            } else {
                out.append((current, nil))
                layer = nil
            }
        }
        return out
    }

    static func differing(_ a: any BlockDevice, _ b: any BlockDevice) -> [Range<UInt64>]? {
        let ca = chain(a), cb = chain(b)
        // The first layer of b's chain that is also in a's: same file, opened as the same kind.
        for (j, lb) in cb.enumerated() {
            guard let fb = lb.file,
                  let i = ca.firstIndex(where: { $0.file == fb && type(of: $0.device) == type(of: lb.device) }) else { continue }
            var ranges: [Range<UInt64>] = []
            for layer in ca[..<i].map(\.device) + cb[..<j].map(\.device) {
                guard let q = layer as? Qcow2Image, let r = try? allocated(q, size: a.size) else { return nil }
                ranges += r
            }
            return ranges.sorted { $0.lowerBound < $1.lowerBound }
        }
        return nil
    }

    /// Granularity of `narrow`: the smallest block an ext, XFS or vfat filesystem has.
    static let compareUnit: UInt64 = 512

    /// The parts of `ranges` where the two devices really hold different bytes. A qcow2
    /// layer allocates whole clusters (64 KiB by default) and copies the unwritten part of
    /// each from its backing file, so most of an allocated cluster still reads the same;
    /// comparing costs two reads of what the overlays allocate, no more.
    static func narrow(_ ranges: [Range<UInt64>], _ a: any BlockDevice, _ b: any BlockDevice) throws -> [Range<UInt64>] {
        // Uninitialised buffers: zeroing two 1 MiB arrays cost more than the compare.
        let chunk = 256 << 10
        let bufferA = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let bufferB = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { bufferA.deallocate(); bufferB.deallocate() }
        var out: [Range<UInt64>] = []
        func add(_ r: Range<UInt64>) {
            if let last = out.last, last.upperBound >= r.lowerBound { out[out.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound) }
            else { out.append(r) }
        }
        for range in ranges {
            var offset = range.lowerBound
            while offset < range.upperBound {
                let n = Int(min(UInt64(chunk), range.upperBound - offset))
                try a.read(into: UnsafeMutableRawBufferPointer(rebasing: bufferA[..<n]), at: offset)
                try b.read(into: UnsafeMutableRawBufferPointer(rebasing: bufferB[..<n]), at: offset)
                guard let pa = bufferA.baseAddress, let pb = bufferB.baseAddress else { break }
                var unit = 0
                while unit < n {
                    let end = min(n, unit + Int(compareUnit))
                    if memcmp(pa + unit, pb + unit, end - unit) != 0 { add((offset + UInt64(unit))..<(offset + UInt64(end))) }
                    unit = end
                }
                offset += UInt64(n)
            }
        }
        return out
    }

    /// The guest ranges a qcow2 image allocates itself (data, zero or compressed clusters),
    /// from its cluster map, as `commit` walks it.
    static func allocated(_ image: Qcow2Image, size: UInt64) throws -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var offset: UInt64 = 0
        let end = min(size, image.size)
        while offset < end {
            let want = Int(min(end - offset, UInt64(Int32.max)))
            let extent = try image.mapping(guestOffset: offset, length: want)
            let length = UInt64(extent.length)
            // Every extent is at least a byte long, so the walk ends (a damaged map must not spin).
            guard length > 0, length <= UInt64(want) else { throw CLIError(message: "\(image.path): bad cluster map at guest byte \(offset)") }
            if extent.kind != .unallocated {
                if let last = out.last, last.upperBound == offset { out[out.count - 1] = last.lowerBound..<(offset + length) }
                else { out.append(offset..<(offset + length)) }
            }
            offset += length
        }
        // Past the overlay's end (a smaller overlay) nothing is allocated: what it reads there
        // is its backing file's, or zeros.
        if image.size < size { out.append(image.size..<size) }
        return out
    }
}

/// A host file by device and inode number, so two spellings of one path compare equal.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}
