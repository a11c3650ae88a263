import GuestFSBlock
import GuestFSFilesystem
import SystemPackage

/// File data and attributes: write, truncate, fallocate, setattr, and the xattr calls FAT has
/// no room for. FAT files have no holes: growing a file allocates clusters and zeroes them
/// (the kernel's fat_cont_expand). The largest file is 4 GiB - 1 (DIR_FileSize is 32 bits; the
/// kernel's s_maxbytes): beyond it, EFBIG.
extension VfatFilesystem {
    static let maxFileSize = UInt64(UInt32.max)

    /// Writes `data` at `offset`; fewer bytes than asked only at the 4 GiB limit or when the
    /// volume fills part way (ENOSPC when nothing fits). mtime is set and the archive bit
    /// raised, as the kernel's fat_write_end does.
    package func write(_ node: UInt64, at offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Int {
        guard data.count > 0 else { return 0 }
        guard offset < Self.maxFileSize else { throw error(.fileTooLarge, "write", "past the 4 GiB - 1 limit of FAT") }
        return try writing { s in
            var (e, _) = try entry(node, &s)
            guard !e.isDirectory else { throw error(.isDirectory, "node \(node)", "is a directory") }
            let cs = UInt64(boot.clusterSize)
            var count = UInt64(min(UInt64(data.count), Self.maxFileSize - offset))
            var chain = try fileChain(node, e, &s)
            let have = UInt64(chain.count)
            let free = UInt64(s.table.freeCount)
            if (offset + count + cs - 1) / cs > have + free {
                let reachable = (have + free) * cs
                guard reachable > offset else { throw error(.noSpace, "write of node \(node)", "no space left on the volume") }
                count = reachable - offset
            }
            let end = offset + count
            try grow(&chain, toCover: end, &s)
            if e.firstCluster == 0, let first = chain.first { e.firstCluster = first }
            let oldSize = UInt64(e.size)
            if offset > oldSize { try zero(chain, from: oldSize, to: offset) }
            try copy(into: chain, at: offset, UnsafeRawBufferPointer(rebasing: data[..<Int(count)]))
            e.size = UInt32(max(oldSize, end))
            let t = VfatTime(.now, offsetMinutes: options.timeOffsetMinutes)
            e.modifyDate = t.date; e.modifyTime = t.time
            e.attributes |= VfatShortEntry.archive
            try writeEntry(node, e, &s)
            s.chains[node] = chain
            return Int(count)
        }
    }

    /// Sets the size: clusters past the new end are freed, growing zero-fills. mtime changes.
    package func truncate(_ node: UInt64, to size: UInt64) throws {
        guard size <= Self.maxFileSize else { throw error(.fileTooLarge, "truncate", "past the 4 GiB - 1 limit of FAT") }
        try writing { s in try truncate(node, to: size, &s) }
    }

    func truncate(_ node: UInt64, to size: UInt64, _ s: inout State) throws {
        let (e, _) = try entry(node, &s)
        guard !e.isDirectory else { throw error(.isDirectory, "node \(node)", "is a directory") }
        try setChainLength(node, e, to: size, &s)
        var now = try entry(node, &s).entry
        now.size = UInt32(size)
        let t = VfatTime(.now, offsetMinutes: options.timeOffsetMinutes)
        now.modifyDate = t.date; now.modifyTime = t.time
        now.attributes |= VfatShortEntry.archive
        try writeEntry(node, now, &s)
        s.preallocated.remove(node)
    }

    /// Makes node `node`'s chain exactly as long as `size` needs: frees the rest, or allocates
    /// and zeroes `[old size, size)` (ENOSPC before anything changes). Writes the entry when
    /// the first cluster changes; the size field is the caller's.
    func setChainLength(_ node: UInt64, _ entry: VfatShortEntry, to size: UInt64, _ s: inout State) throws {
        var e = entry
        let cs = UInt64(boot.clusterSize)
        var chain = try fileChain(node, e, &s)
        let keep = Int((size + cs - 1) / cs)
        if UInt64(e.size) < size {
            try grow(&chain, toCover: size, &s)
            try zero(chain, from: UInt64(e.size), to: size)
        }
        if chain.count > keep {
            s.table.free(Array(chain[keep...]))
            chain.removeSubrange(keep...)
            if let last = chain.last { s.table.terminate(last) }
        }
        let first = chain.first ?? 0
        s.chains[node] = chain
        if first != e.firstCluster {
            e.firstCluster = first
            try writeEntry(node, e, &s)
        }
    }

    /// Appends clusters to `chain` until it covers `end` bytes.
    func grow(_ chain: inout [UInt32], toCover end: UInt64, _ s: inout State) throws {
        let cs = UInt64(boot.clusterSize)
        let needed = Int((end + cs - 1) / cs)
        guard needed > chain.count else { return }
        chain += try s.table.allocate(needed - chain.count, after: chain.last, device: device.displayName)
    }

    /// Writes zeros over bytes `[from, to)` of the file whose clusters are `chain`.
    func zero(_ chain: [UInt32], from: UInt64, to: UInt64) throws {
        let cs = UInt64(boot.clusterSize)
        var pos = from
        while pos < to {
            let n = min(cs - pos % cs, to - pos)
            try device.writeZeros(at: boot.offset(ofCluster: chain[Int(pos / cs)]) + pos % cs, length: Int(n))
            pos += n
        }
    }

    /// Writes `data` at byte `offset` of the file whose clusters are `chain`.
    func copy(into chain: [UInt32], at offset: UInt64, _ data: UnsafeRawBufferPointer) throws {
        let cs = UInt64(boot.clusterSize)
        var done = 0
        while done < data.count {
            let pos = offset + UInt64(done)
            var n = Int(min(cs - pos % cs, UInt64(data.count - done)))
            var index = Int(pos / cs)
            let at = boot.offset(ofCluster: chain[index]) + pos % cs
            // Consecutive clusters go in one write.
            while done + n < data.count, index + 1 < chain.count, chain[index + 1] == chain[index] + 1 {
                index += 1
                n += Int(min(cs, UInt64(data.count - done - n)))
            }
            try device.write(UnsafeRawBufferPointer(rebasing: data[done ..< done + n]), at: at)
            done += n
        }
    }

    /// fallocate as the kernel's fat_fallocate: mode 0 grows the file (zero-filled) when the
    /// range ends past it; KEEP_SIZE allocates clusters past the size, unzeroed, which
    /// releaseNode or close frees again (fat_free_eofblocks). Hole punching: EOPNOTSUPP.
    package func allocate(_ node: UInt64, at offset: UInt64, length: UInt64, keepSize: Bool) throws {
        guard length > 0 else { throw error(.invalidArgument, "fallocate", "zero length") }
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= Self.maxFileSize else { throw error(.fileTooLarge, "fallocate", "past the 4 GiB - 1 limit of FAT") }
        try writing { s in
            let (e, _) = try entry(node, &s)
            guard !e.isDirectory else { throw error(.isDirectory, "node \(node)", "is a directory") }
            if keepSize {
                var chain = try fileChain(node, e, &s)
                let onDisk = UInt64(chain.count) * UInt64(boot.clusterSize)
                guard end > onDisk else { return }
                try grow(&chain, toCover: end, &s)
                s.chains[node] = chain
                if e.firstCluster == 0, let first = chain.first {
                    var changed = e
                    changed.firstCluster = first
                    try writeEntry(node, changed, &s)
                }
                s.preallocated.insert(node)
            } else if end > UInt64(e.size) {
                try truncate(node, to: end, &s)
            }
        }
    }

    package func punchHole(_ node: UInt64, at offset: UInt64, length: UInt64) throws {
        _ = try attributes(node)
        throw error(.notSupported, "fallocate", "FAT cannot punch holes")
    }

    /// setattr as the kernel's fat_setattr: another owner or group, or mode bits beyond 0777,
    /// is EPERM; a mode FAT cannot show (read and execute bits that differ from what the
    /// masks give, write bits other than all or none) is ignored without an error ("too old
    /// behavior" in the kernel's words); otherwise the write bits set or clear the read-only
    /// attribute of a file. mtime is kept to 2 s, atime to the day; ctime is not stored.
    package func setAttributes(_ node: UInt64, _ changes: AttributeChanges) throws {
        try writing { s in
            let attrs = try attributes(node, &s)
            if let uid = changes.uid, uid != options.uid { throw error(.notPermitted, "chown", "FAT files all belong to uid \(options.uid)") }
            if let gid = changes.gid, gid != options.gid { throw error(.notPermitted, "chown", "FAT files all belong to gid \(options.gid)") }
            if let mode = changes.mode, mode & ~0o777 != 0 { throw error(.notPermitted, "chmod", "FAT keeps no setuid, setgid or sticky bits") }
            if let size = changes.size {
                // The kernel's inode_newsize_ok: past s_maxbytes is EFBIG before any space is counted.
                guard size <= Self.maxFileSize else { throw error(.fileTooLarge, "truncate", "past the 4 GiB - 1 limit of FAT") }
                try truncate(node, to: size, &s)
            }
            var (e, _) = try entry(node, &s)
            if let mode = changes.mode {
                let isDir = attrs.isDirectory
                let mask = isDir ? options.dmask : options.fmask
                let perm = mode & ~mask & 0o777
                let current = UInt16(attrs.mode & 0o777)
                let canHoldReadOnly = !isDir && (~options.fmask & 0o222) != 0
                var accepted = perm & 0o555 == current & 0o555
                if canHoldReadOnly {
                    if perm & 0o222 != 0 && perm & 0o222 != 0o222 & ~mask { accepted = false }
                } else if perm & 0o222 != 0o222 & ~mask {
                    accepted = false
                }
                if accepted && canHoldReadOnly {
                    if perm & 0o222 == 0 { e.attributes |= VfatShortEntry.readOnly } else { e.attributes &= ~VfatShortEntry.readOnly }
                }
            }
            func time(_ t: AttributeChanges.Time) -> VfatTime {
                switch t {
                case .now: return VfatTime(.now, offsetMinutes: options.timeOffsetMinutes)
                case .at(let ts): return VfatTime(ts, offsetMinutes: options.timeOffsetMinutes)
                }
            }
            if let a = changes.accessTime { e.accessDate = time(a).date }
            if let m = changes.modificationTime {
                let t = time(m)
                e.modifyDate = t.date; e.modifyTime = t.time
            }
            if node != VfatNodeTable.root { try writeEntry(node, e, &s) }
        }
    }

    /// FAT has no extended attributes: EOPNOTSUPP, as the kernel's vfat (no xattr handlers).
    package func setXattr(_ node: UInt64, name: String, value: [UInt8], mode: XattrSetMode) throws {
        _ = try attributes(node)
        throw error(.notSupported, "xattr \(name)", "FAT has no extended attributes")
    }

    package func removeXattr(_ node: UInt64, name: String) throws {
        _ = try attributes(node)
        throw error(.notSupported, "xattr \(name)", "FAT has no extended attributes")
    }
}
