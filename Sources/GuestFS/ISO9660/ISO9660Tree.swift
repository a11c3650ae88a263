import GuestFSBlock
import GuestFSFilesystem
import Synchronization

/// A directory's entries as the driver serves them, with an index by name.
struct ISO9660Listing: Sendable {
    let entries: [DirectoryEntry]
    let byName: [[UInt8]: Int]
}

/// The directory tree as served: listings built from record groups (names by namespace, Rock
/// Ridge relocations undone, associated files hidden as the kernel hides them), the guard
/// against directory loops, and bounded caches of listings and nodes.
///
/// Loops: every directory but the root is given one parent, the first directory it is listed
/// in (a walk from the root reaches every directory through its parent first). A directory
/// record that names the directory being listed, or one of its ancestors, or a directory that
/// already has another parent, is skipped and reported: an image cannot make the tree cyclic,
/// and a walk from the root always ends. Depth is bounded by `maxDepth` likewise.
final class ISO9660Tree: Sendable {
    /// Deepest directory served (copy-out stops at 2048 too: DirectoryWalkPath.maxDepth).
    static let maxDepth = 2048
    /// Most entries one directory may list.
    static let maxDirectoryEntries = 1_000_000
    /// Directories given a parent at most (the loop guard's memory).
    static let maxDirectories = 4_000_000
    /// Cached listing entries and nodes at most; past these the cache starts over.
    static let maxCachedEntries = 400_000
    static let maxCachedNodes = 200_000
    /// The relocation directory's names: genisoimage/mkisofs "rr_moved", libisofs ".rr_moved".
    static let relocationDirectoryNames: Set<[UInt8]> = [Array("rr_moved".utf8), Array(".rr_moved".utf8)]

    let decoder: ISO9660NodeDecoder
    private struct State {
        var parents: [UInt64: UInt64] = [:]
        var listings: [UInt64: ISO9660Listing] = [:]
        var cachedEntries = 0
        var nodes: [UInt64: ISO9660Node] = [:]
    }
    private let state = Mutex<State>(State())

    init(decoder: ISO9660NodeDecoder) { self.decoder = decoder }

    private var device: any BlockDevice { decoder.device }
    private func report(_ message: String) { decoder.damage.report(message) }

    /// The node `id`, from the cache or the device.
    func node(_ id: UInt64) throws -> ISO9660Node {
        if let cached = state.withLock({ $0.nodes[id] }) { return cached }
        let node = try decoder.node(id)
        remember([node])
        return node
    }

    private func remember(_ nodes: [ISO9660Node]) {
        state.withLock { s in
            if s.nodes.count + nodes.count > Self.maxCachedNodes { s.nodes.removeAll(keepingCapacity: true) }
            for node in nodes.prefix(Self.maxCachedNodes) { s.nodes[node.id] = node }
        }
    }

    /// The listing of directory `dir`.
    func listing(_ dir: UInt64) throws -> ISO9660Listing {
        if let cached = state.withLock({ $0.listings[dir] }) { return cached }
        let node = try self.node(dir)
        guard let extent = node.directory else {
            throw ImageError(path: device.displayName, offset: dir, structure: "ISO 9660 directory", reason: "not a directory", errno: .notDirectory)
        }
        let candidates = try readEntries(dir, extent: extent)
        let listing = state.withLock { s -> ISO9660Listing in
            if let cached = s.listings[dir] { return cached }
            var ancestors: Set<UInt64> = [dir]
            var up = dir
            var depth = 0
            while let parent = s.parents[up], depth <= Self.maxDepth { ancestors.insert(parent); up = parent; depth += 1 }
            ancestors.insert(decoder.rootID)
            var kept: [DirectoryEntry] = []
            for entry in candidates {
                if entry.type == .directory {
                    if ancestors.contains(entry.node) {
                        report("\(device.displayName): ISO 9660 directory at 0x\(String(dir, radix: 16)): entry \"\(String(decoding: entry.name, as: UTF8.self))\" points back at a directory above it (a loop); it is skipped")
                        continue
                    }
                    if let parent = s.parents[entry.node] {
                        if parent != dir {
                            report("\(device.displayName): ISO 9660 directory at 0x\(String(dir, radix: 16)): entry \"\(String(decoding: entry.name, as: UTF8.self))\" is a directory already listed elsewhere; it is skipped")
                            continue
                        }
                    } else {
                        guard depth < Self.maxDepth, s.parents.count < Self.maxDirectories else {
                            report("\(device.displayName): ISO 9660 directory at 0x\(String(dir, radix: 16)): directories nested deeper than \(Self.maxDepth) (or more than \(Self.maxDirectories)) are skipped")
                            continue
                        }
                        s.parents[entry.node] = dir
                    }
                }
                kept.append(entry)
            }
            var byName: [[UInt8]: Int] = [:]
            for (i, entry) in kept.enumerated() { byName[entry.name] = i }
            let listing = ISO9660Listing(entries: kept, byName: byName)
            if s.cachedEntries + kept.count > Self.maxCachedEntries { s.listings.removeAll(keepingCapacity: true); s.cachedEntries = 0 }
            s.listings[dir] = listing
            s.cachedEntries += kept.count
            return listing
        }
        return listing
    }

    /// The entries one directory's records give, before the loop guard.
    private func readEntries(_ dir: UInt64, extent: (start: UInt64, size: UInt64)) throws -> [DirectoryEntry] {
        let reader = ISO9660DirectoryReader(device: device, report: report)
        let groups = try reader.groups(start: extent.start, size: extent.size)
        var entries: [DirectoryEntry] = []
        var seen: Set<[UInt8]> = []
        var fileNodes: [ISO9660Node] = []
        for group in groups {
            let first = group[0]
            if first.isSelf || first.isParent { continue }
            // Associated files (9.1.6 bit 2) are hidden unless mounted with showassoc.
            if first.flags.contains(.associated) { continue }
            let rr = decoder.rockRidge(first)
            if rr.relocated { continue }
            guard let entry = entry(for: group, rockRidge: rr, in: dir) else { continue }
            guard seen.insert(entry.name).inserted else {
                report("\(device.displayName): ISO 9660 directory at 0x\(String(dir, radix: 16)): a second entry named \"\(String(decoding: entry.name, as: UTF8.self))\" is skipped")
                continue
            }
            guard entries.count < Self.maxDirectoryEntries else {
                report("\(device.displayName): ISO 9660 directory at 0x\(String(dir, radix: 16)): more than \(Self.maxDirectoryEntries) entries; the rest are skipped")
                break
            }
            if entry.type != .directory, let node = try? decoder.node(id: entry.node, group: group, rockRidge: rr) {
                fileNodes.append(node)
            }
            if dir == decoder.rootID, decoder.namespace == .rockRidge, entry.type == .directory,
               Self.relocationDirectoryNames.contains(entry.name), holdsOnlyRelocated(entry.node) {
                continue
            }
            entries.append(entry)
        }
        remember(fileNodes)
        return entries
    }

    /// The entry one record group gives, or nil (reported) when its name cannot be served.
    private func entry(for group: [ISO9660DirectoryRecord], rockRidge rr: RockRidgeInfo, in dir: UInt64) -> DirectoryEntry? {
        let first = group[0]
        let name: [UInt8]
        if let nm = rr.name {
            name = nm
        } else if rr.nameTooLong {
            report("\(device.displayName): ISO 9660 record at 0x\(String(first.offset, radix: 16)): Rock Ridge name longer than \(RockRidgeInfo.maxNameLength) bytes; skipped")
            return nil
        } else if case .joliet = decoder.namespace {
            name = ISO9660Joliet.name(first.identifier)
        } else {
            name = ISO9660FileIdentifier.name(first.identifier)
        }
        guard ISO9660FileIdentifier.isServable(name) else {
            report("\(device.displayName): ISO 9660 record at 0x\(String(first.offset, radix: 16)): name \(name.map { String($0, radix: 16) }) cannot be served (empty, \".\", \"..\", or with '/' or NUL); skipped")
            return nil
        }
        let type: NodeType
        if rr.childLink != nil || first.isDirectory {
            type = .directory
        } else if let mode = rr.mode, NodeType(mode: mode) != .directory, NodeType(mode: mode) != .unknown {
            type = NodeType(mode: mode)
        } else {
            type = .regular
        }
        guard let id = try? ISO9660NodeID.of(first, rockRidge: rr, blockSize: decoder.blockSize, device: device.displayName) else {
            report("\(device.displayName): ISO 9660 record at 0x\(String(first.offset, radix: 16)): extent does not fit a byte offset; skipped")
            return nil
        }
        return DirectoryEntry(name: name, node: id, type: type)
    }

    /// Whether directory `id` lists nothing but relocated directories (RE), at least one: the
    /// relocation directory of RRIP 4.1.5, which is hidden so the tree looks as its source did.
    private func holdsOnlyRelocated(_ id: UInt64) -> Bool {
        guard let node = try? self.node(id), let extent = node.directory else { return false }
        let reader = ISO9660DirectoryReader(device: device, report: report)
        guard let groups = try? reader.groups(start: extent.start, size: extent.size) else { return false }
        var relocated = 0
        for group in groups where !group[0].isSelf && !group[0].isParent {
            guard decoder.rockRidge(group[0]).relocated else { return false }
            relocated += 1
        }
        return relocated > 0
    }
}
