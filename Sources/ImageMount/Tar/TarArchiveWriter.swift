import GuestFSFilesystem
import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// One member to write: what a tar header holds. Names and link targets are bytes (guest names
/// need not be UTF-8); libarchive's pax writer marks a name it cannot convert `hdrcharset=BINARY`.
struct TarMember {
    enum Kind { case directory, regular, symlink(target: [UInt8]), hardlink(to: [UInt8]), fifo, characterDevice, blockDevice }
    var path: [UInt8]
    var kind: Kind
    var permissions: UInt32
    var uid: UInt32
    var gid: UInt32
    var size: UInt64 = 0
    var atime: Timestamp
    var mtime: Timestamp
    var rdevMajor: UInt32 = 0
    var rdevMinor: UInt32 = 0
    var xattrs: [Xattr] = []
    var accessACL: POSIXACL? = nil
    var defaultACL: POSIXACL? = nil
    /// The ranges holding data when the file has holes (GNU sparse 1.0 in pax); nil: all data.
    var dataRanges: [(offset: UInt64, length: UInt64)]? = nil
}

/// A pax archive written through libarchive to a descriptor, streaming: one member header,
/// then its data in chunks, and never more than libarchive's block buffer in memory.
///
/// pax (POSIX.1-2001 `ustar` with extended headers) is what GNU tar `--format=posix` writes and
/// what carries nanosecond times, long names, xattrs (`SCHILY.xattr.*`), ACLs
/// (`SCHILY.acl.*`) and GNU sparse maps (`GNU.sparse.major=1`, `minor=0`: the map is the
/// start of the member's data).
final class TarArchiveWriter {
    private let archive: OpaquePointer
    private let entry: OpaquePointer
    private let display: String
    private var closed = false

    /// Bytes per write(2) of an uncompressed archive; the end is padded to GNU tar's 10240-byte
    /// record (its default blocking factor 20), as `tar -cf` leaves it.
    static let blockBytes: Int32 = 10240 * 64

    init(fd: Int32, compression: TarCompression, display: String) throws {
        guard let a = carchive_archive_write_new() else { throw CLIError(message: "\(display): libarchive: out of memory") }
        guard let e = carchive_archive_entry_new() else {
            carchive_archive_write_free(a)
            throw CLIError(message: "\(display): libarchive: out of memory")
        }
        archive = a
        entry = e
        self.display = display
        try check(carchive_archive_write_set_format_pax(a), "pax format")
        // Only SCHILY.xattr.* (what GNU tar and star read), not LIBARCHIVE.xattr.* too, which
        // GNU tar warns about as an unknown keyword.
        try check(carchive_archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY"), "pax xattrheader")
        try check(compression.addWriteFilter(a), "\(compression.rawValue) filter")
        try check(carchive_archive_write_set_bytes_per_block(a, Self.blockBytes), "block size")
        try check(carchive_archive_write_set_bytes_in_last_block(a, compression == .none ? 10240 : 1), "last block")
        try check(carchive_archive_write_open_fd(a, fd), "open")
    }

    deinit {
        if !closed { carchive_archive_write_close(archive) }
        carchive_archive_entry_free(entry)
        carchive_archive_write_free(archive)
    }

    /// Writes `member`'s header; for a regular file the data follows through `writeData`.
    func writeHeader(_ member: TarMember) throws {
        carchive_archive_entry_clear(entry)
        member.path.withNulTerminated { carchive_archive_entry_copy_pathname(entry, $0) }
        let type: UInt32
        switch member.kind {
        case .directory: type = NodeType.directory.modeBits
        case .regular: type = NodeType.regular.modeBits
        case .symlink(let target):
            type = NodeType.symlink.modeBits
            target.withNulTerminated { carchive_archive_entry_copy_symlink(entry, $0) }
        case .hardlink(let first):
            type = NodeType.regular.modeBits
            first.withNulTerminated { carchive_archive_entry_copy_hardlink(entry, $0) }
        case .fifo: type = NodeType.fifo.modeBits
        case .characterDevice: type = NodeType.characterDevice.modeBits
        case .blockDevice: type = NodeType.blockDevice.modeBits
        }
        carchive_archive_entry_set_mode(entry, mode_t(type | (member.permissions & 0o7777)))
        carchive_archive_entry_set_uid(entry, Int64(member.uid))
        carchive_archive_entry_set_gid(entry, Int64(member.gid))
        carchive_archive_entry_set_mtime(entry, time_t(member.mtime.seconds), Int(member.mtime.nanoseconds))
        carchive_archive_entry_set_atime(entry, time_t(member.atime.seconds), Int(member.atime.nanoseconds))
        if case .characterDevice = member.kind { setDevice(member) }
        if case .blockDevice = member.kind { setDevice(member) }
        if case .regular = member.kind {
            carchive_archive_entry_set_size(entry, Int64(clamping: member.size))
            if let ranges = member.dataRanges {
                // GNU sparse 1.0: the data ranges, then (size, 0) when the file ends in a hole
                // (an all-hole file is that one entry), so the map spans the whole file.
                for r in ranges where r.length > 0 {
                    carchive_archive_entry_sparse_add_entry(entry, Int64(clamping: r.offset), Int64(clamping: r.length))
                }
                let end = ranges.last.map { $0.offset + $0.length } ?? 0
                if end < member.size { carchive_archive_entry_sparse_add_entry(entry, Int64(clamping: member.size), 0) }
            }
        } else {
            carchive_archive_entry_set_size(entry, 0)
        }
        for x in member.xattrs {
            x.value.withUnsafeBytes { carchive_archive_entry_xattr_add_entry(entry, x.name, $0.baseAddress, $0.count) }
        }
        if let acl = member.accessACL { TarACL.add(acl, type: ARCHIVE_ENTRY_ACL_TYPE_ACCESS, to: entry) }
        if let acl = member.defaultACL { TarACL.add(acl, type: ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, to: entry) }
        // ARCHIVE_WARN is a name the pax writer could not convert to UTF-8: stored as bytes.
        let rc = carchive_archive_write_header(archive, entry)
        if rc < ARCHIVE_WARN { throw failure("\(String(decoding: member.path, as: UTF8.self)): header") }
    }

    private func setDevice(_ member: TarMember) {
        carchive_archive_entry_set_rdevmajor(entry, dev_t(member.rdevMajor))
        carchive_archive_entry_set_rdevminor(entry, dev_t(member.rdevMinor))
    }

    /// Member data, in order; for a sparse member the holes are passed too (as zeros the pax
    /// writer skips without reading), so that offsets line up with its map.
    func writeData(_ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = carchive_archive_write_data(archive, buffer.baseAddress.map { $0 + done }, buffer.count - done)
            guard n > 0 else { throw failure("write") }
            done += n
        }
    }

    /// Writes the end-of-archive blocks and flushes the filters.
    func close() throws {
        closed = true
        try check(carchive_archive_write_close(archive), "close")
    }

    private func check(_ rc: Int32, _ what: String) throws {
        if rc < ARCHIVE_WARN { throw failure(what) }
    }

    private func failure(_ what: String) -> CLIError {
        let text = carchive_archive_error_string(archive).map { String(cString: $0) } ?? "error \(carchive_archive_errno(archive))"
        return CLIError(message: "\(display): \(what): \(text)")
    }
}

enum TarLocale {
    /// libarchive converts names between the locale's charset and the UTF-8 of pax headers.
    /// Under the C locale (ASCII) every non-ASCII name fails that conversion and is written
    /// with `hdrcharset=BINARY`, a POSIX keyword GNU tar does not know (it warns); under
    /// C.UTF-8 a UTF-8 name goes through unchanged, and only names that are not UTF-8 (stored
    /// as bytes either way) need it. Set before the sandbox: the locale's files are opened here.
    static func useUTF8() {
        _ = setlocale(LC_CTYPE, "C.UTF-8")
    }
}

extension Array where Element == UInt8 {
    /// Calls `body` with the bytes as a C string (the caller has made sure there is no NUL).
    func withNulTerminated<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (self + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}
