import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// Reading host files with everything a guest copy needs: the host half of copy-in, the
/// mirror of `HostDirectory`'s creating calls. Each call names the C function it wraps; errno is
/// read only through `Syscall.valueOrErrno`.
extension HostPath {
    /// `lstat(2)`.
    func status() throws -> stat {
        var st = stat()
        let result = withCString { p in Syscall.valueOrErrno { lstat(p, &st) } }
        if case .failure(let e) = result { throw CLIError(message: "\(display): \(e.description)") }
        return st
    }

    /// The names in a directory, without `.` and `..` (`opendir(3)`, `readdir(3)`), sorted so
    /// that copies are reproducible.
    func directoryNames() throws -> [[UInt8]] {
        guard let dir = withCString({ opendir($0) }) else {
            throw CLIError(message: "\(display): \(Errno(rawValue: errno).description)")
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// `readlink(2)`.
    func linkTarget() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = withCString { p in buffer.withUnsafeMutableBytes { readlink(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) } }
        guard n >= 0 else { throw CLIError(message: "\(display): readlink: \(Errno(rawValue: errno).description)") }
        return Array(buffer.prefix(n))
    }

    /// Every extended attribute (`llistxattr(2)`, `lgetxattr(2)`), not following a symlink.
    func xattrs() throws -> [Xattr] {
        let size = withCString { llistxattr($0, nil, 0) }
        guard size > 0 else { return [] }
        var names = [CChar](repeating: 0, count: size)
        let got = withCString { p in names.withUnsafeMutableBufferPointer { llistxattr(p, $0.baseAddress, size) } }
        guard got > 0 else { return [] }
        var result: [Xattr] = []
        for raw in names.prefix(got).split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let length = withCString { lgetxattr($0, name, nil, 0) }
            guard length >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: length)
            let read = withCString { p in value.withUnsafeMutableBytes { lgetxattr(p, name, $0.baseAddress, length) } }
            guard read >= 0 else { continue }
            result.append(Xattr(name: name, value: Array(value.prefix(read))))
        }
        return result
    }

    /// `open(2)` for reading.
    func openForReading() throws -> FileDescriptor {
        let result = withCString { p in Syscall.valueOrErrno { open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) } }
        switch result {
        case .success(let fd): return FileDescriptor(rawValue: fd)
        case .failure(let e): throw CLIError(message: "\(display): open: \(e.description)")
        }
    }
}

extension FileDescriptor {
    /// The byte ranges holding data, from `lseek(2)` SEEK_DATA/SEEK_HOLE (the whole file when
    /// the host filesystem cannot say).
    func dataRanges(size: UInt64) -> [(offset: UInt64, length: UInt64)] {
        guard size > 0 else { return [] }
        var ranges: [(offset: UInt64, length: UInt64)] = []
        var position: off_t = 0
        while UInt64(position) < size {
            let data = Glibc.lseek(rawValue, position, 3 /* SEEK_DATA */)
            if data < 0 { return errno == ENXIO ? ranges : [(offset: UInt64(0), length: size)] }
            let hole = Glibc.lseek(rawValue, data, 4 /* SEEK_HOLE */)
            if hole < 0 { return [(offset: UInt64(0), length: size)] }
            let end = min(UInt64(hole), size)
            if end > UInt64(data) { ranges.append((UInt64(data), end - UInt64(data))) }
            position = hole
        }
        return ranges
    }
}
