#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import SystemPackage

/// FILE_ATTR_* of STANDARD_INFORMATION (ntfs-3g/layout.h FILE_ATTR_FLAGS; MS-FSCC 2.6).
enum NTFSFileAttribute {
    static let hidden: UInt32 = 0x0002
    static let system: UInt32 = 0x0004
    static let sparse: UInt32 = 0x0200
    static let reparsePoint: UInt32 = 0x0400
    static let compressed: UInt32 = 0x0800
    static let encrypted: UInt32 = 0x4000
}

/// FILE_NAME namespaces (layout.h FILE_NAME_TYPE_FLAGS): a DOS-only name is the 8.3 alias of a
/// Win32 name, which ntfs-3g's readdir filler leaves out.
enum NTFSNameSpace {
    static let posix: Int32 = 0, win32: Int32 = 1, dos: Int32 = 2, win32AndDos: Int32 = 3
}

extension NTFSFilesystem {
    /// What ntfs_fuse_getstat shows for an open inode; `target` is the symlink target when the
    /// node is a reparse-point symlink or junction ntfs-3g maps.
    func stat(_ ni: UnsafeMutablePointer<ntfs_inode>) -> (NodeAttributes, target: [UInt8]?) {
        let flags = cntfs3g_file_attributes(ni)
        let node = ni.pointee.mft_no
        var mode: UInt32
        var size = UInt64(max(0, ni.pointee.data_size))
        var blocks = UInt64(max(0, ni.pointee.allocated_size)).addingReportingOverflow(511).partialValue >> 9
        var links = UInt32(cntfs3g_link_count(ni))
        var target: [UInt8]?
        var rdev: (UInt32, UInt32) = (0, 0)
        if flags & NTFSFileAttribute.reparsePoint != 0, let t = symlinkTarget(ni) {
            target = t
            mode = NodeType.symlink.modeBits | (0o777 & ~options.fmask)
            size = UInt64(t.count)
        } else if cntfs3g_is_directory(ni) != 0 {
            mode = NodeType.directory.modeBits | (0o777 & ~options.dmask)
            // The size of the $I30 index allocation, as ntfs-3g reports it; a directory whose
            // index fits in its record shows what the freshly opened inode holds (0).
            if let na = ntfs_attr_open(ni, AT_INDEX_ALLOCATION, cntfs3g_index_i30(), 4) {
                size = UInt64(max(0, na.pointee.data_size))
                blocks = UInt64(max(0, na.pointee.allocated_size)) >> 9
                ntfs_attr_close(na)
            } else {
                blocks = UInt64(max(0, ni.pointee.allocated_size)) >> 9
            }
            // ntfs-3g shows 1 without `posix_nlink` ("make find(1) work").
            links = 1
        } else if flags & NTFSFileAttribute.system != 0, let special = interixType(ni, hidden: flags & NTFSFileAttribute.hidden != 0) {
            mode = special.type.modeBits | (0o777 & ~options.fmask)
            if let t = special.target { target = t; size = UInt64(t.count) }
            rdev = special.rdev
        } else {
            mode = NodeType.regular.modeBits | (0o777 & ~options.fmask)
        }
        let atime = NTFSTime.unix(ni.pointee.last_access_time)
        let mtime = NTFSTime.unix(ni.pointee.last_data_change_time)
        let ctime = NTFSTime.unix(ni.pointee.last_mft_change_time)
        let crtime = NTFSTime.unix(ni.pointee.creation_time)
        let attributes = NodeAttributes(
            node: node, mode: mode, uid: options.uid, gid: options.gid, size: size, blocks512: blocks, links: links,
            atime: Timestamp(seconds: atime.seconds, nanoseconds: atime.nanoseconds),
            mtime: Timestamp(seconds: mtime.seconds, nanoseconds: mtime.nanoseconds),
            ctime: Timestamp(seconds: ctime.seconds, nanoseconds: ctime.nanoseconds),
            crtime: Timestamp(seconds: crtime.seconds, nanoseconds: crtime.nanoseconds),
            rdevMajor: rdev.0, rdevMinor: rdev.1)
        return (attributes, target)
    }

    /// Interix (SFU/SUA) special files, which ntfs-3g itself creates for `ln -s`, mkfifo and
    /// mknod without a reparse plugin: a SYSTEM-flagged file whose unnamed $DATA is empty (a
    /// FIFO), one byte (a socket), or starts with an INTX_FILE_TYPES magic (layout.h INTX_FILE:
    /// "IntxLNK\1" then the UTF-16 target; "IntxCHR\0"/"IntxBLK\0" then 64-bit major, minor).
    /// nil for an ordinary system file. As ntfs_fuse_getstat decides.
    func interixType(_ ni: UnsafeMutablePointer<ntfs_inode>, hidden: Bool) -> (type: NodeType, target: [UInt8]?, rdev: (UInt32, UInt32))? {
        guard let na = ntfs_attr_open(ni, AT_DATA, cntfs3g_unnamed(), 0) else { return nil }
        defer { ntfs_attr_close(na) }
        let size = na.pointee.data_size
        if !hidden && size == 0 { return (.fifo, nil, (0, 0)) }
        if !hidden && size == 1 { return (.socket, nil, (0, 0)) }
        // The magic, then at most PATH_MAX UTF-16 units of target (a cap on what we read).
        guard size > 8, size <= 8 + 2 * 4096 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = bytes.withUnsafeMutableBytes { buffer in
            (try? read(na, node: ni.pointee.mft_no, into: buffer, at: 0)) ?? -1
        }
        guard n == Int(size) else { return nil }
        let magic = Array(bytes[0 ..< 8])
        if magic == Array("IntxLNK".utf8) + [1] {
            guard (n - 8) % 2 == 0 else { return nil }
            let units = stride(from: 8, to: n, by: 2).map { ntfschar(bytes[$0]) | ntfschar(bytes[$0 + 1]) << 8 }
            var utf8: UnsafeMutablePointer<CChar>?
            let length = ntfs_ucstombs(units, Int32(units.count), &utf8, 0)
            guard length > 0, let utf8 else { return nil }
            defer { free(utf8) }
            return (.symlink, Array(UnsafeRawBufferPointer(start: utf8, count: Int(length))), (0, 0))
        }
        let isChr = magic == Array("IntxCHR".utf8) + [0], isBlk = magic == Array("IntxBLK".utf8) + [0]
        if (isChr || isBlk) && n == 24 {
            func u64(_ at: Int) -> UInt64 { (0 ..< 8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }
            return (isChr ? .characterDevice : .blockDevice, nil, (UInt32(truncatingIfNeeded: u64(8)), UInt32(truncatingIfNeeded: u64(16))))
        }
        return nil
    }

    /// The target ntfs-3g shows for a reparse-point symlink or junction (reparse.c
    /// ntfs_make_symlink). Absolute Windows targets on this volume are given as paths from the
    /// volume's root ("/Users/x"), as ntfs-3g gives them from its mount point.
    func symlinkTarget(_ ni: UnsafeMutablePointer<ntfs_inode>) -> [UInt8]? {
        guard ntfs_possible_symlink(ni).rawValue != 0, let raw = ntfs_make_symlink(ni, "") else { return nil }
        defer { free(raw) }
        let length = strnlen(raw, 4096)
        guard length > 0, length < 4096 else { return nil }
        return Array(UnsafeRawBufferPointer(start: raw, count: length))
    }

    package func attributes(_ node: UInt64) throws -> NodeAttributes {
        try withVolume { vol in
            try withInode(vol, node) { ni in
                var a = stat(ni).0
                // A ghost (NTFSFilesystem+Namespace) is not a name the user made.
                if ghosts[node] != nil && a.links > 0 { a.links -= 1 }
                return a
            }
        }
    }

    package func lookup(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64? {
        // A name no listing shows ('/', NUL, "." or "..") is never looked up. Length is no
        // reason: an NTFS name is up to 255 UTF-16 units, more than NAME_MAX bytes in UTF-8.
        if let problem = GuestName.problem(name), !Self.isLengthOnly(problem, name) { return nil }
        return try withVolume { vol in
            try withInode(vol, dir) { ni in
                guard cntfs3g_is_directory(ni) != 0 else {
                    throw ImageError(path: device.displayName, structure: Self.recordName(dir), reason: "not a directory", errno: .notDirectory)
                }
                var cName = name.map { CChar(bitPattern: $0) }
                cName.append(0)
                errno = 0
                let reference = ntfs_inode_lookup_by_mbsname(ni, cName)
                if reference == UInt64.max {
                    if errno == ENOENT || errno == 0 || errno == EILSEQ { return nil }
                    throw failure(Self.recordName(dir), "cannot look up a name in the directory")
                }
                return cntfs3g_mref(reference)
            }
        }
    }

    /// Whether GuestName's only objection is the length (see `lookup`).
    static func isLengthOnly(_ problem: GuestName.Problem, _ name: [UInt8]) -> Bool {
        problem == .tooLong(name.count) && !name.contains(0x2F) && !name.contains(0)
    }

    /// What ntfs_readdir gives one directory: each name in the POSIX or Win32 namespace with
    /// its record and ntfs-3g's dt_type.
    final class Listing {
        var entries: [(name: [UInt8], node: UInt64, dtType: UInt32)] = []
        var rejected: [String] = []
        /// Bounds a hostile index whose walk never ends (a loop of index blocks).
        static let maxEntries = 4_000_000
    }

    package func entries(_ dir: UInt64) throws -> [DirectoryEntry] {
        let listing = Listing()
        let shown: [(DirectoryEntry, Bool)] = try withVolume { vol in
            try withInode(vol, dir) { ni in
                guard cntfs3g_is_directory(ni) != 0 else {
                    throw ImageError(path: device.displayName, structure: Self.recordName(dir), reason: "not a directory", errno: .notDirectory)
                }
                var position: Int64 = 0
                let box = Unmanaged.passUnretained(listing).toOpaque()
                let status = ntfs_readdir(ni, &position, box) { raw, name, length, nameType, _, reference, dtType in
                    guard let raw, let name, length >= 0 else { return -1 }
                    let listing = Unmanaged<Listing>.fromOpaque(raw).takeUnretainedValue()
                    guard listing.entries.count < Listing.maxEntries else { return -1 }
                    // 8.3 aliases are hidden (ntfs_fuse_filler).
                    if nameType == NTFSNameSpace.dos { return 0 }
                    var utf8: UnsafeMutablePointer<CChar>?
                    let bytes = ntfs_ucstombs(name, length, &utf8, 0)
                    guard bytes >= 0, let utf8 else {
                        listing.rejected.append("MFT record \(cntfs3g_mref(reference)): a name that is not valid UTF-16")
                        return 0
                    }
                    defer { free(utf8) }
                    let text = Array(UnsafeRawBufferPointer(start: utf8, count: Int(bytes)))
                    listing.entries.append((text, cntfs3g_mref(reference), UInt32(dtType)))
                    return 0
                }
                if status != 0 && listing.entries.isEmpty {
                    throw failure(Self.recordName(dir), "cannot read the directory index")
                }
                if status != 0 {
                    damage.report("\(device.displayName): NTFS directory (MFT record \(dir)): index read stopped early: \(failure(Self.recordName(dir), "readdir").reason)")
                }
                var out: [(DirectoryEntry, Bool)] = []
                out.reserveCapacity(listing.entries.count)
                for entry in listing.entries {
                    if entry.name == [0x2E] || entry.name == [0x2E, 0x2E] { continue }
                    if let ghost = ghosts[entry.node], ghost.dir == dir, ghost.name == entry.name { continue }
                    // The metafiles ($MFT, $Bitmap…) are hidden, as ntfs-3g hides them without show_sys_files.
                    if entry.node != Self.rootRecord && entry.node < Self.firstUserRecord { continue }
                    if let problem = GuestName.problem(entry.name), !Self.isLengthOnly(problem, entry.name) {
                        listing.rejected.append("\(GuestName.display(entry.name)): \(problem)")
                        continue
                    }
                    let type: NodeType?
                    switch Int32(entry.dtType) {
                    case NTFS_DT_DIR: type = .directory
                    case NTFS_DT_REG: type = .regular
                    case NTFS_DT_LNK: type = .symlink
                    default: type = nil
                    }
                    if let type {
                        out.append((DirectoryEntry(name: entry.name, node: entry.node, type: type), true))
                    } else {
                        // A reparse point or an odd type: stat decides, as ntfs-3g's filler does.
                        let t = (try? withInode(vol, entry.node) { stat($0).0.type }) ?? .unknown
                        out.append((DirectoryEntry(name: entry.name, node: entry.node, type: t), true))
                    }
                }
                return out
            }
        }
        for message in listing.rejected {
            damage.report("\(device.displayName): NTFS directory (MFT record \(dir)): skipped \(message)")
        }
        return shown.map(\.0)
    }

    package func readlink(_ node: UInt64) throws -> [UInt8] {
        try withVolume { vol in
            try withInode(vol, node) { ni in
                guard let target = stat(ni).target else {
                    throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "not a symbolic link", errno: .invalidArgument)
                }
                return target
            }
        }
    }

    package func openFile(_ node: UInt64) throws -> any GuestFile {
        try open(node)
    }

    /// `openFile` with its concrete type.
    package func open(_ node: UInt64) throws -> NTFSFile {
        try withVolume { vol in
            try withInode(vol, node) { ni in
                let (attributes, _) = stat(ni)
                switch attributes.type {
                case .regular: break
                case .directory:
                    throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "is a directory", errno: .isDirectory)
                default:
                    throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "not a regular file", errno: .invalidArgument)
                }
                guard let na = ntfs_attr_open(ni, AT_DATA, cntfs3g_unnamed(), 0) else {
                    throw failure(Self.recordName(node), "cannot open the unnamed $DATA attribute")
                }
                defer { ntfs_attr_close(na) }
                // ntfs-3g refuses to read EFS-encrypted data without efs_raw (ntfs_fuse_open).
                if NAttrEncrypted(na) != 0 {
                    throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "the file is EFS-encrypted", errno: .permissionDenied)
                }
                let ranges = try dataRanges(na, node: node)
                // Reads outside the lock need a runlist nothing changes: a read-only volume.
                var map: NTFSRunMap?
                if !isWritable, case .success(let m) = NTFSRunMap.make(na, clusterSize: blockSize, deviceSize: device.size) {
                    map = m
                }
                return NTFSFile(filesystem: self, node: node, size: UInt64(max(0, na.pointee.data_size)), ranges: ranges, map: map)
            }
        }
    }

    /// Where a $DATA attribute holds data: all of it, except the holes of a sparse,
    /// uncompressed attribute's runlist (LCN_HOLE runs; a compressed attribute's holes are
    /// part of its compression units, so all of it counts as data).
    func dataRanges(_ na: UnsafeMutablePointer<ntfs_attr>, node: UInt64) throws -> [(offset: UInt64, length: UInt64)] {
        let size = UInt64(max(0, na.pointee.data_size))
        guard size > 0 else { return [] }
        guard cntfs3g_attr_non_resident(na) != 0, NAttrSparse(na) != 0, NAttrCompressed(na) == 0 else { return [(0, size)] }
        guard ntfs_attr_map_whole_runlist(na) == 0, var rl = na.pointee.rl else {
            throw failure(Self.recordName(node), "cannot map the runlist of $DATA")
        }
        let clusterSize = UInt64(blockSize)
        var ranges: [(offset: UInt64, length: UInt64)] = []
        // The runlist ends with a zero-length element (runlist.h); it was built and bounded by
        // libntfs-3g from the mapping pairs, and we stop at the attribute's size anyway.
        var guardCount = 0
        while rl.pointee.length > 0, guardCount < 1 << 24 {
            guardCount += 1
            let element = rl.pointee
            defer { rl += 1 }
            guard element.lcn != LCN_HOLE.rawValue, element.vcn >= 0, element.length > 0 else { continue }
            let (start, o1) = UInt64(element.vcn).multipliedReportingOverflow(by: clusterSize)
            let (length, o2) = UInt64(element.length).multipliedReportingOverflow(by: clusterSize)
            guard !o1, !o2, start < size else { continue }
            let clipped = min(length, size - start)
            if let last = ranges.last, last.offset + last.length == start {
                ranges[ranges.count - 1].length += clipped
            } else {
                ranges.append((start, clipped))
            }
        }
        return ranges
    }

    /// Reads up to `buffer.count` bytes of the unnamed $DATA of `node` at `offset` (ntfs_attr_pread
    /// decompresses and fills holes).
    func readData(_ node: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard buffer.count > 0, offset <= UInt64(Int64.max) else { return 0 }
        return try withVolume { vol in
            try withInode(vol, node) { ni in
                guard let na = ntfs_attr_open(ni, AT_DATA, cntfs3g_unnamed(), 0) else {
                    throw failure(Self.recordName(node), "cannot open the unnamed $DATA attribute")
                }
                defer { ntfs_attr_close(na) }
                return try read(na, node: node, into: buffer, at: offset)
            }
        }
    }

    /// ntfs_attr_pread until `buffer` is full or the attribute ends.
    func read(_ na: UnsafeMutablePointer<ntfs_attr>, node: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        let size = UInt64(max(0, na.pointee.data_size))
        guard offset < size else { return 0 }
        let wanted = Int(min(UInt64(buffer.count), size - offset))
        var done = 0
        while done < wanted {
            let n = ntfs_attr_pread(na, Int64(offset) + Int64(done), Int64(wanted - done), buffer.baseAddress! + done)
            if n < 0 { throw failure(Self.recordName(node), "cannot read $DATA at \(offset + UInt64(done))") }
            if n == 0 { break }
            guard n <= Int64(wanted - done) else {
                throw ImageError(path: device.displayName, structure: Self.recordName(node), reason: "libntfs-3g read more than asked", errno: .ioError)
            }
            done += Int(n)
        }
        return done
    }
}
