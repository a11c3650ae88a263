import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// rename, as the kernel's vfat_rename and vfat_rename_exchange: the entry moves (its short
/// name is made afresh for the new name), its clusters, size, attributes and times stay; a
/// replaced target's slots are reused for the source, so the target name never goes missing;
/// a directory moved to another parent has its ".." rewritten. Renaming a name to itself, or to
/// a name that differs only in case (the same entry for vfat's case-folding lookup), does
/// nothing, as the VFS does when source and target are one inode.
extension VfatFilesystem {
    package func rename(from srcDir: UInt64, _ srcName: [UInt8], to dstDir: UInt64, _ dstName: [UInt8],
                       flags: RenameFlags) throws {
        guard flags.isSubset(of: [.noReplace, .exchange]), flags != [.noReplace, .exchange] else {
            throw error(.invalidArgument, "rename", "unsupported flags 0x\(String(flags.rawValue, radix: 16))")
        }
        try writing { s in
            let (src, srcId) = try existing(srcDir, srcName, &s)
            let units = try VfatName.longName(dstName)
            let dstD = try liveDirectory(dstDir, &s)
            let dst = dstD.find(dstName)
            let dstId = dst.map { id(of: $0, in: dstD, &s) }
            if src.entry.isDirectory { try checkNotInside(srcId, src.entry, dstDir, &s) }
            let srcPosition = try directory(srcDir, &s).position(ofSlot: src.shortSlot)

            if flags.contains(.exchange) {
                guard let dst, let dstId else {
                    throw error(.noSuchFileOrDirectory, "name \(String(decoding: dstName, as: UTF8.self))", "no such file or directory")
                }
                if dstId == srcId { return }
                if dst.entry.isDirectory { try checkNotInside(dstId, dst.entry, srcDir, &s) }
                let dstPosition = dstD.position(ofSlot: dst.shortSlot)
                var a = dst.entry, b = src.entry
                a.name = src.entry.name; a.caseFlags = src.entry.caseFlags
                b.name = dst.entry.name; b.caseFlags = dst.entry.caseFlags
                try device.writeBytes(a.encoded, at: srcPosition)
                try device.writeBytes(b.encoded, at: dstPosition)
                s.directories.removeAll()
                s.nodes.swap(srcId, dstId)
                if srcDir != dstDir {
                    if src.entry.isDirectory { try setParent(of: src.entry, to: dstDir, &s) }
                    if dst.entry.isDirectory { try setParent(of: dst.entry, to: srcDir, &s) }
                }
                try touchDirectory(srcDir, &s)
                if dstDir != srcDir { try touchDirectory(dstDir, &s) }
                return
            }

            if let dst, let dstId {
                if dstId == srcId { return }
                guard !flags.contains(.noReplace) else {
                    throw error(.fileExists, "name \(String(decoding: dstName, as: UTF8.self))", "already exists")
                }
                if src.entry.isDirectory && !dst.entry.isDirectory {
                    throw error(.notDirectory, "name \(String(decoding: dstName, as: UTF8.self))", "not a directory")
                }
                if !src.entry.isDirectory && dst.entry.isDirectory {
                    throw error(.isDirectory, "name \(String(decoding: dstName, as: UTF8.self))", "is a directory")
                }
                if dst.entry.isDirectory, try !isEmptyDirectory(dstId, &s) {
                    throw error(.directoryNotEmpty, "name \(String(decoding: dstName, as: UTF8.self))", "directory not empty")
                }
                let dstPosition = dstD.position(ofSlot: dst.shortSlot)
                var e = src.entry
                e.name = dst.entry.name; e.caseFlags = dst.entry.caseFlags
                try device.writeBytes(e.encoded, at: dstPosition)
                s.directories.removeAll()
                try removeItem(src, from: srcDir, &s)
                try dropNode(dstId, dst.entry, at: dstPosition, &s)
                s.nodes.move(srcId, to: dstPosition)
            } else {
                let position = try addEntry(in: dstDir, name: units, src.entry, &s)
                try removeItem(src, from: srcDir, &s)
                s.nodes.move(srcId, to: position)
            }
            if src.entry.isDirectory && srcDir != dstDir { try setParent(of: src.entry, to: dstDir, &s) }
            try touchDirectory(srcDir, &s)
            if dstDir != srcDir { try touchDirectory(dstDir, &s) }
        }
    }

    /// The first cluster a ".." entry names for a child of `dir` (0 for the root, §6.5).
    func parentCluster(_ dir: UInt64, _ s: inout State) throws -> UInt32 {
        dir == VfatNodeTable.root ? 0 : try entry(dir, &s).entry.firstCluster
    }

    /// Rewrites the ".." entry of directory `child` to name `parent`.
    func setParent(of child: VfatShortEntry, to parent: UInt64, _ s: inout State) throws {
        var dir = try directory(cluster: child.firstCluster, &s)
        guard let dotdot = dir.items.first(where: { $0.entry.name == VfatShortEntry.dotDotName }) else { return }
        var e = dotdot.entry
        e.firstCluster = try parentCluster(parent, &s)
        try writeSlots(&dir, from: dotdot.shortSlot, e.encoded, &s)
    }

    /// EINVAL when directory `dir` is `moved` (entry `e`) or lies inside it, found by walking
    /// ".." entries up to the root (at most 4096 levels: deeper means a loop, EIO).
    func checkNotInside(_ moved: UInt64, _ e: VfatShortEntry, _ dir: UInt64, _ s: inout State) throws {
        if dir == moved { throw error(.invalidArgument, "rename", "a directory cannot move into itself") }
        guard dir != VfatNodeTable.root else { return }
        var cluster = try entry(dir, &s).entry.firstCluster
        for _ in 0 ..< 4096 {
            if cluster == 0 || (fat32 && cluster == boot.rootCluster) { return }
            if cluster == e.firstCluster { throw error(.invalidArgument, "rename", "a directory cannot move into itself") }
            let d = try directory(cluster: cluster, &s)
            guard let dotdot = d.items.first(where: { $0.entry.name == VfatShortEntry.dotDotName }) else { return }
            cluster = dotdot.entry.firstCluster
        }
        throw error(.ioError, "directory node \(dir)", "\"..\" entries form a loop")
    }
}

extension VfatNodeTable {
    /// Two nodes exchanged their entries (RENAME_EXCHANGE).
    mutating func swap(_ a: UInt64, _ b: UInt64) {
        guard let pa = position(of: a), let pb = position(of: b) else { return }
        move(a, to: pb)
        move(b, to: pa)
    }
}
