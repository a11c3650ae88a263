import GuestFSFilesystem
import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// A tar archive read through libarchive from a descriptor, one member at a time: its header,
/// then its data as (bytes, offset) blocks, so a sparse member's holes are simply offsets
/// that never come. Only the tar formats (ustar, pax, GNU, with GNU sparse 0.x/1.0 and old GNU
/// sparse) are read; the compression is the one named, or detected.
final class TarArchiveReader {
    private let archive: OpaquePointer
    private let display: String

    /// The most one xattr value may hold (XATTR_SIZE_MAX, include/uapi/linux/limits.h).
    static let maxXattrValue = 65536
    /// The longest symlink target Linux stores (PATH_MAX less the NUL).
    static let maxLinkTarget = 4095

    init(fd: Int32, compression: TarCompression?, display: String) throws {
        guard let a = carchive_archive_read_new() else { throw CLIError(message: "\(display): libarchive: out of memory") }
        archive = a
        self.display = display
        try check(carchive_archive_read_support_format_tar(a), "tar format")
        try check(carchive_archive_read_support_format_gnutar(a), "GNU tar format")
        if let compression { try check(compression.addReadFilter(a), "\(compression.rawValue) filter") } else {
            // Detected from the first bytes; only filters built into libarchive work here
            // (one that needs a program fails: the sandbox forbids exec).
            try check(carchive_archive_read_support_filter_all(a), "filters")
        }
        try check(carchive_archive_read_open_fd(a, fd, 1 << 20), "open")
    }

    deinit {
        carchive_archive_read_close(archive)
        carchive_archive_read_free(archive)
    }

    /// The next member's header, or nil at the end of the archive. The entry stays valid until
    /// the next call. A warning (a keyword libarchive does not know, a name it cannot convert)
    /// is not an error: the member is read as it is.
    func next() throws -> OpaquePointer? {
        var entry: OpaquePointer? = nil
        let rc = carchive_archive_read_next_header(archive, &entry)
        if rc == ARCHIVE_EOF { return nil }
        if rc < ARCHIVE_WARN { throw failure("reading the next member") }
        guard let entry else { throw failure("reading the next member") }
        return entry
    }

    /// The next data block of the current member: bytes and their offset in the file; nil at its end.
    func nextBlock(member: String) throws -> (bytes: UnsafeRawBufferPointer, offset: Int64)? {
        var buffer: UnsafeRawPointer? = nil
        var size = 0
        var offset: Int64 = 0
        let rc = carchive_archive_read_data_block(archive, &buffer, &size, &offset)
        if rc == ARCHIVE_EOF { return nil }
        if rc < ARCHIVE_WARN { throw failure("\(member): data") }
        return (UnsafeRawBufferPointer(start: buffer, count: size), offset)
    }

    /// Bytes of the (compressed) archive consumed so far, for progress.
    var consumed: UInt64 { UInt64(clamping: carchive_archive_filter_bytes(archive, -1)) }

    private func check(_ rc: Int32, _ what: String) throws {
        if rc < ARCHIVE_WARN { throw failure(what) }
    }

    private func failure(_ what: String) -> CLIError {
        let text = carchive_archive_error_string(archive).map { String(cString: $0) } ?? "error \(carchive_archive_errno(archive))"
        return CLIError(message: "\(display): \(what): \(text)")
    }
}

/// What tar-in takes from a member's header, copied out of libarchive's entry.
struct TarHeader {
    var path: [UInt8]
    var type: NodeType
    var permissions: UInt16
    var uid: UInt32
    var gid: UInt32
    var size: UInt64
    var mtime: Timestamp
    var rdevMajor: UInt32
    var rdevMinor: UInt32
    var symlinkTarget: [UInt8]?
    var hardlinkTarget: [UInt8]?
    var xattrs: [Xattr]
    var accessACL: POSIXACL?
    var defaultACL: POSIXACL?

    /// Reads the header; what cannot be right (a negative size or id, an oversized xattr or
    /// link target) is refused with the reason, for a one-line message naming the member.
    /// Names in ACL entries that no host user or group has (their entries are left out).
    var unresolvedNames: [String] = []

    init(_ entry: OpaquePointer, names: TarNameMap) throws {
        path = Self.path(entry)
        let mode = UInt32(carchive_archive_entry_mode(entry))
        type = NodeType(mode: mode)
        permissions = UInt16(mode & 0o7777)
        let size = carchive_archive_entry_size(entry), uid = carchive_archive_entry_uid(entry), gid = carchive_archive_entry_gid(entry)
        guard size >= 0 else { throw TarHeaderProblem.bad("negative size") }
        guard uid >= 0, uid <= Int64(UInt32.max), gid >= 0, gid <= Int64(UInt32.max) else { throw TarHeaderProblem.bad("owner id out of range") }
        self.size = UInt64(size)
        self.uid = UInt32(uid)
        self.gid = UInt32(gid)
        let nanoseconds = carchive_archive_entry_mtime_nsec(entry)
        mtime = Timestamp(seconds: Int64(carchive_archive_entry_mtime(entry)),
                          nanoseconds: Int32(clamping: nanoseconds >= 0 && nanoseconds < 1_000_000_000 ? nanoseconds : 0))
        rdevMajor = UInt32(truncatingIfNeeded: carchive_archive_entry_rdevmajor(entry))
        rdevMinor = UInt32(truncatingIfNeeded: carchive_archive_entry_rdevminor(entry))
        func bytes(_ p: UnsafePointer<CChar>?) -> [UInt8]? { p.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } }
        symlinkTarget = bytes(carchive_archive_entry_symlink(entry))
        hardlinkTarget = bytes(carchive_archive_entry_hardlink(entry))
        if let t = symlinkTarget, t.count > TarArchiveReader.maxLinkTarget { throw TarHeaderProblem.bad("symlink target of \(t.count) bytes") }
        xattrs = []
        if carchive_archive_entry_xattr_reset(entry) > 0 {
            var name: UnsafePointer<CChar>? = nil
            var value: UnsafeRawPointer? = nil
            var length = 0
            while carchive_archive_entry_xattr_next(entry, &name, &value, &length) == ARCHIVE_OK, let name {
                guard length <= TarArchiveReader.maxXattrValue else { throw TarHeaderProblem.bad("xattr \(String(cString: name)) of \(length) bytes") }
                xattrs.append(Xattr(name: String(cString: name), value: Array(UnsafeRawBufferPointer(start: value, count: length))))
            }
        }
        accessACL = TarACL.read(entry, type: ARCHIVE_ENTRY_ACL_TYPE_ACCESS, names: names, unresolved: &unresolvedNames)
        defaultACL = TarACL.read(entry, type: ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, names: names, unresolved: &unresolvedNames)
        // libarchive folds an access ACL's group:: entry into the mode it reports; with a mask
        // the group bits are the mask's (acl(5)), as the header's mode field had them.
        if let acl = accessACL { permissions = (permissions & 0o7000) | acl.permissionBits(keeping: permissions) }
    }
}

extension TarHeader {
    /// The member's name as libarchive gives it (bytes, not converted).
    static func path(_ entry: OpaquePointer) -> [UInt8] {
        carchive_archive_entry_pathname(entry).map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
    }
}

enum TarHeaderProblem: Error {
    case bad(String)
}
