#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import GuestFSFilesystem
import CNtfs3g

/// Named data streams (alternate data streams) as extended attributes, as ntfs-3g's
/// streams_interface=xattr (its default) shows them: stream NAME is the xattr `user.NAME`.
extension NTFSFilesystem {
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
