import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// Names: create, mkdir, unlink, rmdir, rename and the release of unlinked nodes, as the
/// kernel's vfat (fs/fat/namei_vfat.c) does them. What FAT cannot store fails the way the
/// kernel fails it: device nodes, FIFOs, sockets, symlinks and hard links with EPERM (vfat has
/// no mknod, symlink or link operation, and the VFS answers EPERM).
extension VfatFilesystem: WritableGuestFilesystem {
    /// Runs a write operation under the lock: the volume is marked dirty first, and the FAT
    /// sectors it changed are written after it, whether it succeeded or not.
    func writing<R>(_ body: (inout State) throws -> R) throws -> R {
        try locked { s in
            try beginWrite(&s)
            defer { try? s.table.flush(to: device, boot: boot) }
            let result = try body(&s)
            try s.table.flush(to: device, boot: boot)
            return result
        }
    }

    func isInUse(_ id: UInt64, _ s: inout State) -> Bool { s.inUse?(id) ?? false }

    /// The directory `dir`, checked to be one that still exists (ENOENT for a removed one).
    func liveDirectory(_ dir: UInt64, _ s: inout State) throws -> VfatDirectory {
        let d = try directory(dir, &s)
        if s.orphans[dir] != nil { throw error(.noSuchFileOrDirectory, "node \(dir)", "directory has been removed") }
        return d
    }

    package func createNode(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64 {
        try writing { s in
            let type = NodeType(mode: UInt32(spec.mode))
            guard type == .regular || type == .unknown else {
                throw error(.notPermitted, "name \(String(decoding: name, as: UTF8.self))", "FAT holds only files and directories")
            }
            let units = try VfatName.longName(name)
            guard try liveDirectory(dir, &s).find(name) == nil else {
                throw error(.fileExists, "name \(String(decoding: name, as: UTF8.self))", "already exists")
            }
            let e = VfatShortEntry(name: [], attributes: VfatShortEntry.archive,
                                   time: VfatTime(.now, offsetMinutes: options.timeOffsetMinutes))
            let position = try addEntry(in: dir, name: units, e, &s)
            try touchDirectory(dir, &s)
            return s.nodes.id(at: position)
        }
    }

    /// mkdir: a zeroed cluster with "." and ".." (fat_alloc_new_dir), then the name.
    package func makeDirectory(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64 {
        try writing { s in
            let units = try VfatName.longName(name)
            guard try liveDirectory(dir, &s).find(name) == nil else {
                throw error(.fileExists, "name \(String(decoding: name, as: UTF8.self))", "already exists")
            }
            let (parent, _) = try entry(dir, &s)
            let time = VfatTime(.now, offsetMinutes: options.timeOffsetMinutes)
            let cluster = try s.table.allocate(1, after: nil, device: device.displayName)[0]
            do {
                let at = boot.offset(ofCluster: cluster)
                try device.writeZeros(at: at, length: Int(boot.clusterSize))
                // fatgen103 §6.5: ".." of a directory in the root names cluster 0.
                let dot = VfatShortEntry(name: VfatShortEntry.dotName, attributes: VfatShortEntry.directory,
                                         firstCluster: cluster, time: time)
                let dotdot = VfatShortEntry(name: VfatShortEntry.dotDotName, attributes: VfatShortEntry.directory,
                                            firstCluster: dir == VfatNodeTable.root ? 0 : parent.firstCluster, time: time)
                try device.writeBytes(dot.encoded + dotdot.encoded, at: at)
                let e = VfatShortEntry(name: [], attributes: VfatShortEntry.directory, firstCluster: cluster, time: time)
                let position = try addEntry(in: dir, name: units, e, &s)
                try touchDirectory(dir, &s)
                return s.nodes.id(at: position)
            } catch {
                s.table.free([cluster])
                throw error
            }
        }
    }

    package func makeSymlink(in dir: UInt64, name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) throws -> UInt64 {
        try writing { _ in throw error(.notPermitted, "symlink", "FAT has no symbolic links") }
    }

    package func link(_ target: UInt64, into dir: UInt64, name: [UInt8]) throws {
        try writing { _ in throw error(.notPermitted, "link", "FAT has no hard links") }
    }

    package func unlink(in dir: UInt64, name: [UInt8]) throws {
        try writing { s in
            let (item, id) = try existing(dir, name, &s)
            guard !item.entry.isDirectory else {
                throw error(.isDirectory, "name \(String(decoding: name, as: UTF8.self))", "is a directory")
            }
            let position = try liveDirectory(dir, &s).position(ofSlot: item.shortSlot)
            try removeItem(item, from: dir, &s)
            try touchDirectory(dir, &s)
            try dropNode(id, item.entry, at: position, &s)
        }
    }

    package func removeDirectory(in dir: UInt64, name: [UInt8]) throws {
        try writing { s in
            let (item, id) = try existing(dir, name, &s)
            guard item.entry.isDirectory else {
                throw error(.notDirectory, "name \(String(decoding: name, as: UTF8.self))", "not a directory")
            }
            guard try isEmptyDirectory(id, &s) else {
                throw error(.directoryNotEmpty, "name \(String(decoding: name, as: UTF8.self))", "directory not empty")
            }
            let position = try liveDirectory(dir, &s).position(ofSlot: item.shortSlot)
            try removeItem(item, from: dir, &s)
            try touchDirectory(dir, &s)
            try dropNode(id, item.entry, at: position, &s)
        }
    }

    /// A name of node `id` (entry `e`, at `position`) is gone: its clusters are freed now, or,
    /// for a file a user still holds, at releaseNode. A removed directory's clusters go at
    /// once; a held one lives on as an empty orphan.
    func dropNode(_ id: UInt64, _ e: VfatShortEntry, at position: UInt64, _ s: inout State) throws {
        let held = isInUse(id, &s)
        s.nodes.remove(at: position, keep: held)
        var kept = e
        if held && !e.isDirectory {
            s.orphans[id] = kept
            return
        }
        if let chain = try? s.table.chain(from: e.firstCluster, device: device.displayName) { s.table.free(chain) }
        s.chains[id] = nil
        s.preallocated.remove(id)
        if held {
            kept.firstCluster = 0; kept.size = 0
            s.orphans[id] = kept
        }
    }

    /// Frees a node left with no name once nothing refers to it; trims what fallocate kept
    /// past the end of a named one (the kernel's fat_free_eofblocks at eviction).
    package func releaseNode(_ node: UInt64) throws {
        guard isWritable else { return }
        // The FUSE server calls this at every forget: only a node with something to free may
        // mark the volume dirty.
        guard try locked({ s in s.nodes.isDetached(node) || s.preallocated.contains(node) }) else { return }
        try writing { s in
            if s.nodes.isDetached(node) { try release(node, &s) } else if s.preallocated.contains(node) {
                try trimPreallocation(node, &s)
            }
        }
    }

    func release(_ id: UInt64, _ s: inout State) throws {
        if let e = s.orphans[id], let chain = try? s.table.chain(from: e.firstCluster, device: device.displayName) {
            s.table.free(chain)
        }
        s.orphans[id] = nil
        s.chains[id] = nil
        s.preallocated.remove(id)
        s.nodes.forget(id)
    }

    func trimPreallocation(_ id: UInt64, _ s: inout State) throws {
        s.preallocated.remove(id)
        guard let (e, _) = try? entry(id, &s), !e.isDirectory else { return }
        try setChainLength(id, e, to: UInt64(e.size), &s)
    }
}
