import GuestFSBlock
import GuestFSFilesystem
import CExt2fs

extension Ext2Filesystem {
    /// All extended attributes of inode `number`, in on-disk order.
    /// Inline data's "system.data" is an implementation detail of ext4 and is left out.
    ///
    /// A filesystem without the ext_attr feature (`mke2fs -O ^ext_attr`, common for ext2/3) has
    /// no xattrs: the list is empty (libext2fs would refuse to open the xattr handle, with
    /// EXT2_ET_MISSING_EA_FEATURE, unless inline_data is on).
    package func xattrs(_ number: UInt32) throws -> [Xattr] {
        guard hasXattrFeature else { return [] }
        return try withHandle { fs in
            var handle: OpaquePointer?
            try check(ext2fs_xattrs_open(fs, number, &handle), "xattrs", inode: number)
            defer { ext2fs_xattrs_close(&handle) }
            try check(ext2fs_xattrs_read(handle), "xattrs", inode: number)
            final class Collector { var items: [Xattr] = [] }
            let collector = Collector()
            let rc = withExtendedLifetime(collector) {
                ext2fs_xattrs_iterate(handle, { name, value, length, priv in
                    guard let name, let priv else { return 0 }
                    let c = Unmanaged<Collector>.fromOpaque(priv).takeUnretainedValue()
                    let key = String(cString: name)
                    if key == "system.data" { return 0 }
                    let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
                    c.items.append(Xattr(name: key, value: bytes))
                    return 0
                }, Unmanaged.passUnretained(collector).toOpaque())
            }
            try check(rc, "xattrs", inode: number)
            // ext2fs_xattrs_iterate hands out the on-disk ACL form; ext2fs_xattr_get converts
            // POSIX ACLs to the form getfacl and the kernel use, so fetch those again.
            return try collector.items.map { item in
                guard item.name.hasPrefix("system.posix_acl_") else { return item }
                var value: UnsafeMutableRawPointer?
                var length = 0
                try check(ext2fs_xattr_get(handle, item.name, &value, &length), "xattr \(item.name)", inode: number)
                defer { ext2fs_free_mem(&value) }
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
                return Xattr(name: item.name, value: bytes)
            }
        }
    }

    /// Whether the filesystem can hold xattrs at all: ext_attr, or inline_data (whose
    /// "system.data" is an xattr), as ext2fs_xattrs_open requires.
    var hasXattrFeature: Bool {
        superblock.compatFeatures & Ext2Superblock.compatExtAttr != 0
            || superblock.incompatFeatures & Ext2Superblock.incompatInlineData != 0
    }

    /// The value of one extended attribute, or nil when the inode has none by that name.
    package func xattr(_ number: UInt32, name: String) throws -> [UInt8]? {
        try xattrs(number).first { $0.name == name }?.value
    }
}
