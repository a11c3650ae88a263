#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import SystemPackage

/// Names: create, mknod, mkdir, symlink, link, unlink, rmdir, rename and the release of
/// unlinked nodes, with libntfs-3g's calls in the order lowntfs-3g (src/lowntfs-3g.c) makes
/// them: ntfs_create / ntfs_create_device / ntfs_create_symlink, ntfs_link, ntfs_delete, the
/// lookup cache kept current with ntfs_inode_update_mbsname. As ntfs-3g without `permissions`:
/// no security descriptor of our own (securid 0: libntfs-3g gives new files one that lets
/// everyone in), symlinks, FIFOs, sockets and device nodes as Interix files (ntfs-3g's default
/// special_files=interix), names in the POSIX namespace.
///
/// A file unlinked while the kernel still holds it keeps a hidden name, as lowntfs-3g's
/// "ghost" (".ghost-ntfs-3g-N" in the same directory): NTFS frees an MFT record when its last
/// name goes, so the ghost keeps the data readable and writable until releaseNode (at forget)
/// or close deletes it. Listings leave ghosts out.
extension NTFSFilesystem: WritableGuestFilesystem {
    /// NTFS_MAX_NAME_LEN (layout.h): a FILE_NAME holds at most 255 UTF-16 units.
    static let maxNameUnits = 255
    /// PATH_MAX: the longest symlink target ntfs-3g writes (and reads back, ntfs_fuse_readlink).
    static let maxSymlinkTarget = 4095

    /// The UTF-16 units of a name to create: EINVAL for what cannot be a name, EILSEQ for bytes
    /// that are not UTF-8 (ntfs_mbstoucs), ENAMETOOLONG past 255 units.
    func units(ofName name: [UInt8]) throws -> [ntfschar] {
        guard !name.isEmpty, name != [0x2E], name != [0x2E, 0x2E], !name.contains(0x2F), !name.contains(0) else {
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "not a valid name", errno: .invalidArgument)
        }
        let units = try Self.utf16(name, what: "name \(GuestName.display(name))", device: device.displayName)
        guard units.count <= Self.maxNameUnits else {
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))",
                             reason: "longer than 255 UTF-16 units", errno: .fileNameTooLong)
        }
        return units
    }

    /// ntfs_mbstoucs of `bytes` (UTF-8, no NUL).
    static func utf16(_ bytes: [UInt8], what: String, device: String) throws -> [ntfschar] {
        var text = bytes.map { CChar(bitPattern: $0) }
        text.append(0)
        var out: UnsafeMutablePointer<ntfschar>?
        let n = ntfs_mbstoucs(text, &out)
        defer { free(out) }
        guard n >= 0, let out else {
            throw ImageError(path: device, structure: what, reason: "not valid UTF-8", errno: Errno(rawValue: EILSEQ))
        }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }

    static func cString(_ name: [UInt8]) -> [CChar] { name.map { CChar(bitPattern: $0) } + [0] }

    /// Opens MFT record `node`; the caller closes it (ntfs_inode_close or ntfs_delete).
    func openInode(_ vol: UnsafeMutablePointer<ntfs_volume>, _ node: UInt64) throws -> UnsafeMutablePointer<ntfs_inode> {
        guard node < (1 << 48), let ni = ntfs_inode_open(vol, node) else {
            throw failure(Self.recordName(node), "cannot open the MFT record", errno: node < (1 << 48) ? errno : ENOENT)
        }
        return ni
    }

    /// FILE_Extend (layout.h): its entries ($Quota, $ObjId, $Reparse…) are metafiles above
    /// record 16, so lowntfs-3g refuses to create or remove anything in it (EPERM).
    static let extendRecord: UInt64 = 11

    /// A directory open for a change of its entries (EPERM in $Extend).
    func openDirectory(_ vol: UnsafeMutablePointer<ntfs_volume>, _ dir: UInt64) throws -> UnsafeMutablePointer<ntfs_inode> {
        guard dir != Self.extendRecord else {
            throw ImageError(path: device.displayName, structure: Self.recordName(dir), reason: "$Extend holds only metafiles", errno: .notPermitted)
        }
        let ni = try openInode(vol, dir)
        guard cntfs3g_is_directory(ni) != 0 else {
            ntfs_inode_close(ni)
            throw ImageError(path: device.displayName, structure: Self.recordName(dir), reason: "not a directory", errno: .notDirectory)
        }
        return ni
    }

    /// The record `name` names in the open directory, or nil.
    func find(_ dirNi: UnsafeMutablePointer<ntfs_inode>, _ name: [UInt8]) throws -> UInt64? {
        errno = 0
        let reference = ntfs_inode_lookup_by_mbsname(dirNi, Self.cString(name))
        if reference == UInt64.max {
            if errno == ENOENT || errno == 0 || errno == EILSEQ { return nil }
            throw failure(Self.recordName(dirNi.pointee.mft_no), "cannot look up a name in the directory")
        }
        return cntfs3g_mref(reference)
    }

    // MARK: Creating

    package func createNode(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64 {
        let type = NodeType(mode: UInt32(spec.mode))
        let mode: mode_t
        switch type {
        case .regular, .unknown: mode = S_IFREG
        case .fifo: mode = S_IFIFO
        case .socket: mode = S_IFSOCK
        case .characterDevice: mode = S_IFCHR
        case .blockDevice: mode = S_IFBLK
        case .directory, .symlink:
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "not a node type mknod makes", errno: .invalidArgument)
        }
        return try create(in: dir, name: name) { dirNi, units in
            if type == .characterDevice || type == .blockDevice {
                return ntfs_create_device(dirNi, 0, units.baseAddress, UInt8(units.count), mode, cntfs3g_makedev(spec.rdevMajor, spec.rdevMinor))
            }
            return ntfs_create(dirNi, 0, units.baseAddress, UInt8(units.count), mode)
        }
    }

    package func makeDirectory(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64 {
        try create(in: dir, name: name) { dirNi, units in
            ntfs_create(dirNi, 0, units.baseAddress, UInt8(units.count), S_IFDIR)
        }
    }

    /// An Interix symlink ("IntxLNK\1" and the UTF-16 target in a SYSTEM file), as ntfs-3g makes
    /// by default (ntfs_create_symlink); the reading side shows it, and Windows reparse-point
    /// symlinks, as symlinks.
    package func makeSymlink(in dir: UInt64, name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) throws -> UInt64 {
        guard !target.isEmpty, !target.contains(0) else {
            throw ImageError(path: device.displayName, structure: "symlink \(GuestName.display(name))", reason: "empty target", errno: .noSuchFileOrDirectory)
        }
        guard target.count <= Self.maxSymlinkTarget else {
            throw ImageError(path: device.displayName, structure: "symlink \(GuestName.display(name))", reason: "target longer than PATH_MAX", errno: .fileNameTooLong)
        }
        var utarget = try Self.utf16(target, what: "symlink target", device: device.displayName)
        return try create(in: dir, name: name) { dirNi, units in
            utarget.withUnsafeMutableBufferPointer { t in
                ntfs_create_symlink(dirNi, 0, units.baseAddress, UInt8(units.count), t.baseAddress, Int32(t.count))
            }
        }
    }

    /// The common part of every creation (lowntfs-3g ntfs_fuse_create): the name checked, the
    /// node made by `make` in the open directory, the lookup cache told, the new record closed
    /// in its directory (ntfs_inode_close_in_dir) before the directory.
    func create(in dir: UInt64, name: [UInt8],
                _ make: (UnsafeMutablePointer<ntfs_inode>, UnsafeMutableBufferPointer<ntfschar>) -> UnsafeMutablePointer<ntfs_inode>?) throws -> UInt64 {
        var nameUnits = try units(ofName: name)
        return try writing { vol in
            let dirNi = try openDirectory(vol, dir)
            defer { ntfs_inode_close(dirNi) }
            guard try find(dirNi, name) == nil else {
                throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "already exists", errno: .fileExists)
            }
            guard let ni = nameUnits.withUnsafeMutableBufferPointer({ make(dirNi, $0) }) else {
                throw failure(Self.recordName(dir), "cannot create \(GuestName.display(name))")
            }
            let node = ni.pointee.mft_no
            cntfs3g_set_archive(ni)
            ntfs_inode_update_mbsname(dirNi, Self.cString(name), node)
            ntfs_inode_update_times(dirNi, ntfs_time_update_flags(NTFS_UPDATE_MTIME.rawValue | NTFS_UPDATE_CTIME.rawValue))
            if ntfs_inode_close_in_dir(ni, dirNi) != 0 {
                throw failure(Self.recordName(node), "cannot write the new MFT record")
            }
            return node
        }
    }

    // MARK: Links

    /// link(2): another name for a file (directories are refused with EPERM, as the VFS does).
    package func link(_ target: UInt64, into dir: UInt64, name: [UInt8]) throws {
        var nameUnits = try units(ofName: name)
        try writing { vol in
            let ni = try openInode(vol, target)
            if cntfs3g_is_directory(ni) != 0 {
                ntfs_inode_close(ni)
                throw ImageError(path: device.displayName, structure: Self.recordName(target), reason: "is a directory", errno: .notPermitted)
            }
            try addName(vol, ni, in: dir, name, &nameUnits)
        }
    }

    /// ntfs_link of the open `ni` as `name` in `dir` (lowntfs-3g ntfs_fuse_newlink); closes
    /// `ni`, after the directory, so that its FILE_NAME copies sync against the index on disk.
    func addName(_ vol: UnsafeMutablePointer<ntfs_volume>, _ ni: UnsafeMutablePointer<ntfs_inode>, in dir: UInt64,
                 _ name: [UInt8], _ units: inout [ntfschar]) throws {
        var failed: ImageError?
        do {
            let dirNi = try openDirectory(vol, dir)
            if try find(dirNi, name) != nil {
                failed = ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "already exists", errno: .fileExists)
            } else if units.withUnsafeMutableBufferPointer({ ntfs_link(ni, dirNi, $0.baseAddress, UInt8($0.count)) }) != 0 {
                failed = failure(Self.recordName(dir), "cannot link \(GuestName.display(name))")
            } else {
                ntfs_inode_update_mbsname(dirNi, Self.cString(name), ni.pointee.mft_no)
                cntfs3g_set_archive(ni)
                ntfs_inode_update_times(ni, NTFS_UPDATE_CTIME)
                ntfs_inode_update_times(dirNi, ntfs_time_update_flags(NTFS_UPDATE_MTIME.rawValue | NTFS_UPDATE_CTIME.rawValue))
            }
            if ntfs_inode_close(dirNi) != 0 && failed == nil { failed = failure(Self.recordName(dir), "cannot write the directory") }
        } catch {
            failed = ImageError.wrap(error)
        }
        if ntfs_inode_close(ni) != 0 && failed == nil { failed = failure(Self.recordName(ni.pointee.mft_no), "cannot write the MFT record") }
        if let failed { throw failed }
    }

    package func unlink(in dir: UInt64, name: [UInt8]) throws {
        try writing { vol in try removeName(vol, in: dir, name, directory: false) }
    }

    package func removeDirectory(in dir: UInt64, name: [UInt8]) throws {
        try writing { vol in try removeName(vol, in: dir, name, directory: true) }
    }

    /// Removes `name` from `dir` (lowntfs-3g ntfs_fuse_rm): metafiles are EPERM, the type is
    /// checked when `directory` says which one is wanted, a directory must be empty unless it
    /// has another name (ntfs_delete checks both), and a file's last name is first doubled by a
    /// ghost while the kernel holds the file. Under the lock, on the read-write volume.
    func removeName(_ vol: UnsafeMutablePointer<ntfs_volume>, in dir: UInt64, _ name: [UInt8], directory: Bool?) throws {
        var nameUnits = try units(ofName: name)
        var dirNi: UnsafeMutablePointer<ntfs_inode>? = try openDirectory(vol, dir)
        var ni: UnsafeMutablePointer<ntfs_inode>?
        defer {
            if let ni { ntfs_inode_close(ni) }
            if let dirNi { ntfs_inode_close(dirNi) }
        }
        guard let node = try find(dirNi!, name) else {
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "no such file or directory", errno: .noSuchFileOrDirectory)
        }
        guard node >= Self.firstUserRecord else {
            throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "an NTFS metafile cannot be removed", errno: .notPermitted)
        }
        ni = try openInode(vol, node)
        let isDirectory = cntfs3g_is_directory(ni!) != 0
        if directory == true && !isDirectory {
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "not a directory", errno: .notDirectory)
        }
        if directory == false && isDirectory {
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(name))", reason: "is a directory", errno: .isDirectory)
        }
        if !isDirectory && cntfs3g_link_count(ni!) <= 1 && ghosts[node] == nil && (inUse?(node) ?? false) {
            // Keep the record: a ghost name first (ni is closed by addName and reopened).
            ghostSequence += 1
            let ghost = Array(".ghost-ntfs-3g-".utf8) + Array(String(ghostSequence).utf8)
            var ghostUnits = try units(ofName: ghost)
            if let d = dirNi { ntfs_inode_close(d); dirNi = nil }
            let held = ni!
            ni = nil
            try addName(vol, held, in: dir, ghost, &ghostUnits)
            ghosts[node] = (dir, ghost)
            dirNi = try openDirectory(vol, dir)
            ni = try openInode(vol, node)
        }
        let status = nameUnits.withUnsafeMutableBufferPointer { u in
            ntfs_delete(vol, nil, ni!, dirNi!, u.baseAddress, UInt8(u.count))
        }
        // ntfs_delete closes both inodes, whatever it returns.
        ni = nil
        dirNi = nil
        if status != 0 { throw failure(Self.recordName(node), "cannot remove \(GuestName.display(name))") }
    }

    /// Deletes the ghost name of `node` (under the lock, read-write volume); one already gone
    /// (someone removed it by name) is no error.
    func deleteGhost(_ vol: UnsafeMutablePointer<ntfs_volume>, _ node: UInt64, _ ghost: (dir: UInt64, name: [UInt8])) throws {
        let saved = inUse
        inUse = nil
        defer { inUse = saved }
        do {
            try removeName(vol, in: ghost.dir, ghost.name, directory: false)
        } catch let e as ImageError where e.errno == .noSuchFileOrDirectory {
            return
        }
    }

    /// Frees a node unlinked while open once the kernel has forgotten it: its ghost goes.
    package func releaseNode(_ node: UInt64) throws {
        guard isWritable else { return }
        guard Self.libraryLock.withLock({ ghosts[node] != nil }) else { return }
        try writing { vol in
            guard let ghost = ghosts[node], !(inUse?(node) ?? false) else { return }
            ghosts[node] = nil
            try deleteGhost(vol, node, ghost)
        }
    }

    package func setNodeInUse(_ check: @escaping @Sendable (UInt64) -> Bool) {
        Self.libraryLock.withLock { inUse = check }
    }

    // MARK: Rename

    /// rename as lowntfs-3g ntfs_fuse_rename does it: a new name, then the old one removed; an
    /// existing target is first kept under a temporary name (ntfs_fuse_safe_rename), so a
    /// failure part way puts it back. RENAME_NOREPLACE is EEXIST on an existing target;
    /// RENAME_EXCHANGE is EINVAL: libntfs-3g has no atomic exchange, and ntfs-3g refuses it too.
    package func rename(from srcDir: UInt64, _ srcName: [UInt8], to dstDir: UInt64, _ dstName: [UInt8], flags: RenameFlags) throws {
        guard flags.subtracting(.noReplace).isEmpty else {
            throw ImageError(path: device.displayName, structure: "rename", reason: "RENAME_EXCHANGE is not supported on NTFS", errno: .invalidArgument)
        }
        var dstUnits = try units(ofName: dstName)
        _ = try units(ofName: srcName)
        try writing { vol in
            let (source, target, sourceIsDir, targetIsDir) = try renameParties(vol, srcDir, srcName, dstDir, dstName)
            guard let target else {
                try addName(vol, try openInode(vol, source), in: dstDir, dstName, &dstUnits)
                do { try removeName(vol, in: srcDir, srcName, directory: nil) } catch {
                    try? removeName(vol, in: dstDir, dstName, directory: nil)
                    throw error
                }
                return
            }
            if flags.contains(.noReplace) {
                throw ImageError(path: device.displayName, structure: "name \(GuestName.display(dstName))", reason: "already exists", errno: .fileExists)
            }
            // Two names of one file: nothing to do (rename(2)).
            if target == source { return }
            if sourceIsDir && !targetIsDir {
                throw ImageError(path: device.displayName, structure: "name \(GuestName.display(dstName))", reason: "not a directory", errno: .notDirectory)
            }
            if !sourceIsDir && targetIsDir {
                throw ImageError(path: device.displayName, structure: "name \(GuestName.display(dstName))", reason: "is a directory", errno: .isDirectory)
            }
            if targetIsDir {
                let ni = try openInode(vol, target)
                let empty = ntfs_check_empty_dir(ni)
                let code = errno
                ntfs_inode_close(ni)
                if empty != 0 { throw failure(Self.recordName(target), "cannot replace the directory", errno: code) }
            }
            ghostSequence += 1
            let temporary = dstName + Array(".ntfs-3g-\(ghostSequence)".utf8)
            var temporaryUnits = try units(ofName: temporary)
            try addName(vol, try openInode(vol, target), in: dstDir, temporary, &temporaryUnits)
            do {
                try removeName(vol, in: dstDir, dstName, directory: nil)
            } catch {
                try? removeName(vol, in: dstDir, temporary, directory: nil)
                throw error
            }
            do {
                try addName(vol, try openInode(vol, source), in: dstDir, dstName, &dstUnits)
            } catch {
                // Put the old target back under its name.
                if (try? addName(vol, try openInode(vol, target), in: dstDir, dstName, &dstUnits)) != nil {
                    try? removeName(vol, in: dstDir, temporary, directory: nil)
                }
                throw error
            }
            do { try removeName(vol, in: srcDir, srcName, directory: nil) } catch {
                try? removeName(vol, in: dstDir, dstName, directory: nil)
                if (try? addName(vol, try openInode(vol, target), in: dstDir, dstName, &dstUnits)) != nil {
                    try? removeName(vol, in: dstDir, temporary, directory: nil)
                }
                throw error
            }
            try removeName(vol, in: dstDir, temporary, directory: nil)
        }
    }

    /// The records of a rename's source and (existing) target, and whether each is a directory.
    func renameParties(_ vol: UnsafeMutablePointer<ntfs_volume>, _ srcDir: UInt64, _ srcName: [UInt8], _ dstDir: UInt64,
                       _ dstName: [UInt8]) throws -> (UInt64, UInt64?, Bool, Bool) {
        func resolve(_ dir: UInt64, _ name: [UInt8]) throws -> (UInt64, Bool)? {
            let dirNi = try openDirectory(vol, dir)
            defer { ntfs_inode_close(dirNi) }
            guard let node = try find(dirNi, name) else { return nil }
            let ni = try openInode(vol, node)
            defer { ntfs_inode_close(ni) }
            return (node, cntfs3g_is_directory(ni) != 0)
        }
        guard let source = try resolve(srcDir, srcName) else {
            throw ImageError(path: device.displayName, structure: "name \(GuestName.display(srcName))", reason: "no such file or directory", errno: .noSuchFileOrDirectory)
        }
        guard source.0 >= Self.firstUserRecord else {
            throw ImageError(path: device.displayName, structure: Self.recordName(source.0), reason: "an NTFS metafile cannot be renamed", errno: .notPermitted)
        }
        let target = try resolve(dstDir, dstName)
        return (source.0, target?.0, source.1, target?.1 ?? false)
    }
}
