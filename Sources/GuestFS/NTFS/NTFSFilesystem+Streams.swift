#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g
import SystemPackage

/// Named data streams (alternate data streams) as extended attributes, as ntfs-3g's
/// streams_interface=xattr (its default) shows them: stream NAME is the xattr `user.NAME`;
/// setting one creates or rewrites the stream, removing it removes the $DATA attribute
/// (ntfs_fuse_setxattr / ntfs_fuse_removexattr). `system.ntfs_attrib` reads and sets the
/// FILE_ATTR_* flags as a 32-bit little-endian value (ntfs_get/set_ntfs_attrib, security.c);
/// like ntfs-3g, listxattr does not list it. Other namespaces are EOPNOTSUPP.
extension NTFSFilesystem {
    static let attribName = "system.ntfs_attrib"
    /// XATTR_SIZE_MAX (include/uapi/linux/limits.h): a stream larger than this cannot be an
    /// xattr value the kernel passes on, so it is listed by `xattrs` only as a warning.
    static let maxXattrValue = 65_536
    static let streamPrefix = "user."

    /// The names (UTF-16 units) of the named $DATA attributes of an open inode.
    func streamNames(_ ni: UnsafeMutablePointer<ntfs_inode>, node: UInt64) throws -> [(utf16: [ntfschar], name: String)] {
        guard let search = ntfs_attr_get_search_ctx(ni, nil) else {
            throw failure(Self.recordName(node), "cannot search the attributes")
        }
        defer { ntfs_attr_put_search_ctx(search) }
        var names: [(utf16: [ntfschar], name: String)] = []
        var name: UnsafePointer<ntfschar>?
        var length: UInt32 = 0
        // An MFT record (and its attribute list) holds a bounded number of attributes; the
        // cap only guards against a loop in a hostile attribute list.
        var steps = 0
        while steps < 65_536, cntfs3g_next_data_attribute(search, &name, &length) == 0 {
            steps += 1
            guard length > 0, let name else { continue }
            let units = Array(UnsafeBufferPointer(start: name, count: Int(length)))
            var utf8: UnsafeMutablePointer<CChar>?
            let bytes = ntfs_ucstombs(name, Int32(length), &utf8, 0)
            guard bytes > 0, let utf8 else { continue }
            defer { free(utf8) }
            let text = String(decoding: UnsafeRawBufferPointer(start: utf8, count: Int(bytes)), as: UTF8.self)
            // A stream made of several attribute extents is listed once.
            if !names.contains(where: { $0.utf16 == units }) { names.append((units, text)) }
        }
        return names
    }

    /// The value of stream `units` of an open inode, or nil past XATTR_SIZE_MAX.
    func streamValue(_ ni: UnsafeMutablePointer<ntfs_inode>, node: UInt64, _ units: [ntfschar]) throws -> [UInt8]? {
        var units = units
        let na: UnsafeMutablePointer<ntfs_attr>? = units.withUnsafeMutableBufferPointer {
            ntfs_attr_open(ni, AT_DATA, $0.baseAddress, UInt32($0.count))
        }
        guard let na else { throw failure(Self.recordName(node), "cannot open a named $DATA attribute") }
        defer { ntfs_attr_close(na) }
        let size = na.pointee.data_size
        guard size >= 0, size <= Int64(Self.maxXattrValue) else { return nil }
        var value = [UInt8](repeating: 0, count: Int(size))
        let n = try value.withUnsafeMutableBytes { try read(na, node: node, into: $0, at: 0) }
        return Array(value.prefix(n))
    }

    package func xattrs(_ node: UInt64) throws -> [Xattr] {
        try withVolume { vol in
            try withInode(vol, node) { ni in
                var out: [Xattr] = []
                for stream in try streamNames(ni, node: node) {
                    guard let value = try streamValue(ni, node: node, stream.utf16) else {
                        damage.report("\(device.displayName): NTFS MFT record \(node): stream \(stream.name) is larger than an xattr can be (\(Self.maxXattrValue) bytes); not shown")
                        continue
                    }
                    out.append(Xattr(name: Self.streamPrefix + stream.name, value: value))
                }
                return out
            }
        }
    }

    package func xattr(_ node: UInt64, name: String) throws -> [UInt8]? {
        if name == Self.attribName {
            return try withVolume { vol in
                try withInode(vol, node) { ni in
                    var value = [UInt8](repeating: 0, count: 4)
                    let n = value.withUnsafeMutableBytes { ntfs_get_ntfs_attrib(ni, $0.baseAddress?.assumingMemoryBound(to: CChar.self), 4) }
                    guard n == 4 else { throw failure(Self.recordName(node), "cannot read the file attributes") }
                    return value
                }
            }
        }
        guard name.hasPrefix(Self.streamPrefix) else { return nil }
        let wanted = String(name.dropFirst(Self.streamPrefix.count))
        return try withVolume { vol in
            try withInode(vol, node) { ni in
                guard let stream = try streamNames(ni, node: node).first(where: { $0.name == wanted }) else { return nil }
                return try streamValue(ni, node: node, stream.utf16)
            }
        }
    }
}

extension NTFSFilesystem {
    /// The UTF-16 name of the stream `user.NAME` names: EOPNOTSUPP for another namespace,
    /// ERANGE past 255 units (an attribute name's limit, layout.h ATTR_RECORD name_length).
    func streamUnits(_ name: String) throws -> [ntfschar] {
        guard name.hasPrefix(Self.streamPrefix) else {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "NTFS keeps only user.* xattrs (named streams)", errno: .notSupported)
        }
        let stream = Array(name.utf8.dropFirst(Self.streamPrefix.utf8.count))
        guard !stream.isEmpty, !stream.contains(0) else {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "empty stream name", errno: .invalidArgument)
        }
        let units = try Self.utf16(stream, what: "xattr \(name)", device: device.displayName)
        guard units.count <= Self.maxNameUnits else {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "stream name longer than 255 UTF-16 units", errno: Errno(rawValue: ERANGE))
        }
        return units
    }

    package func setXattr(_ node: UInt64, name: String, value: [UInt8], mode: XattrSetMode) throws {
        if name == Self.attribName {
            guard value.count == 4 else {
                throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "the value is 4 bytes", errno: .invalidArgument)
            }
            try writing { vol in
                try withInode(vol, node) { ni in
                    let status = value.withUnsafeBytes { ntfs_set_ntfs_attrib(ni, $0.baseAddress?.assumingMemoryBound(to: CChar.self), 4, 0) }
                    if status != 0 { throw failure(Self.recordName(node), "cannot set the file attributes") }
                    ntfs_inode_update_times(ni, NTFS_UPDATE_CTIME)
                }
            }
            return
        }
        var units = try streamUnits(name)
        // Refusals that need no change are decided on the volume as it is (nothing written).
        let exists = try streamExists(node, units)
        if exists && mode == .create {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "already exists", errno: .fileExists)
        }
        if !exists && mode == .replace {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "no such attribute", errno: Errno(rawValue: ENODATA))
        }
        try writing { vol in
            try withInode(vol, node) { ni in
                var na = units.withUnsafeMutableBufferPointer { ntfs_attr_open(ni, AT_DATA, $0.baseAddress, UInt32($0.count)) }
                if let open = na {
                    if ntfs_attr_truncate(open, 0) != 0 {
                        ntfs_attr_close(open)
                        throw failure(Self.recordName(node), "cannot rewrite stream \(name)")
                    }
                } else {
                    let added = units.withUnsafeMutableBufferPointer { ntfs_attr_add(ni, AT_DATA, $0.baseAddress, UInt8($0.count), nil, 0) }
                    if added != 0 { throw failure(Self.recordName(node), "cannot add stream \(name)") }
                    na = units.withUnsafeMutableBufferPointer { ntfs_attr_open(ni, AT_DATA, $0.baseAddress, UInt32($0.count)) }
                }
                guard let na else { throw failure(Self.recordName(node), "cannot open stream \(name)") }
                defer { ntfs_attr_close(na) }
                var done = 0
                try value.withUnsafeBytes { bytes in
                    while done < bytes.count {
                        let n = ntfs_attr_pwrite(na, Int64(done), Int64(bytes.count - done), bytes.baseAddress! + done)
                        if n <= 0 { throw failure(Self.recordName(node), "cannot write stream \(name)") }
                        done += Int(min(n, Int64(bytes.count - done)))
                    }
                }
                if NAttrCompressed(na) != 0 && ntfs_attr_pclose(na) != 0 {
                    throw failure(Self.recordName(node), "cannot finish stream \(name)")
                }
                ntfs_inode_update_times(ni, NTFS_UPDATE_CTIME)
                cntfs3g_set_archive(ni)
            }
        }
    }

    /// Whether stream `units` exists, however large.
    func streamExists(_ node: UInt64, _ units: [ntfschar]) throws -> Bool {
        try withVolume { vol in
            try withInode(vol, node) { ni in try streamNames(ni, node: node).contains { $0.utf16 == units } }
        }
    }

    package func removeXattr(_ node: UInt64, name: String) throws {
        if name == Self.attribName {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "the file attributes cannot be removed", errno: .notPermitted)
        }
        var units = try streamUnits(name)
        guard try streamExists(node, units) else {
            throw ImageError(path: device.displayName, structure: "xattr \(name)", reason: "no such attribute", errno: Errno(rawValue: ENODATA))
        }
        try writing { vol in
            try withInode(vol, node) { ni in
                let status = units.withUnsafeMutableBufferPointer { ntfs_attr_remove(ni, AT_DATA, $0.baseAddress, UInt32($0.count)) }
                if status != 0 {
                    throw failure(Self.recordName(node), "cannot remove stream \(name)", errno: errno == ENOENT ? ENODATA : errno)
                }
                ntfs_inode_update_times(ni, NTFS_UPDATE_CTIME)
                cntfs3g_set_archive(ni)
            }
        }
    }
}
