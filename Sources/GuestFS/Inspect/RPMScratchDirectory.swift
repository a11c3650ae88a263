import GuestFSBlock
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The private host directory librpm reads a copy of a guest's rpmdb from (RPMDatabase.swift
/// says why a copy is needed at all).
///
/// It is made with mkdtemp(3) (mode 0700, a name no other process can predict) under $TMPDIR
/// or /tmp before the process sandboxes itself, and is held open twice: the directory, beneath
/// which the sandbox grants every right but executing (librpm and SQLite make their -shm and
/// lock files there), and its parent, beneath which the sandbox grants
/// only removing empty directories, so that the directory itself can be removed at the end
/// from inside the sandbox. Files are made relative to the directory descriptor with
/// `O_EXCL | O_NOFOLLOW`, so nothing already there, or a symlink, is ever written through.
/// `remove()` runs on every path out of inspect (a `defer` in the command), and deinit runs it
/// again in case it was not.
final class RPMScratchDirectory {
    /// The directory, as librpm is given it (`%_dbpath`).
    let path: String
    let directory: FileDescriptor
    /// The directory holding `path`: only for removing `path` at the end.
    let parent: FileDescriptor
    private let name: String
    private var removed = false

    /// More entries than librpm or SQLite ever make in a database directory (the database,
    /// its -wal and -shm, a lock file); a listing longer than this is not ours.
    static let maxEntries = 256

    init() throws(Errno) {
        let base = Self.base()
        var template = Array((base + "/imagemount-rpmdb.XXXXXX").utf8CString)
        try template.withUnsafeMutableBufferPointer { buffer throws(Errno) in
            guard let start = buffer.baseAddress else { throw Errno.invalidArgument }
            _ = try Syscall.valueOrErrno { mkdtemp(start) == nil ? Int32(-1) : 0 }.get()
        }
        let made = String(cString: template)
        path = made
        name = String(made.dropFirst(base.count + 1))
        switch Syscall.valueOrErrno({ open(made, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }) {
        case .success(let fd): directory = FileDescriptor(rawValue: fd)
        case .failure(let error):
            rmdir(made)
            throw error
        }
        // Read-only is all a descriptor for Landlock's rule and unlinkat needs.
        switch Syscall.valueOrErrno({ open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }) {
        case .success(let fd): parent = FileDescriptor(rawValue: fd)
        case .failure(let error):
            try? directory.close()
            rmdir(made)
            throw error
        }
    }

    deinit { remove() }

    /// $TMPDIR when it is an absolute path librpm can take as it is (no '%', which would start
    /// a macro when rpm expands `%_dbpath`, and no whitespace), else /tmp.
    static func base() -> String {
        if let value = getenv("TMPDIR").map({ String(cString: $0) }), value.hasPrefix("/"),
           !value.contains(where: { $0 == "%" || $0.isWhitespace }) {
            var trimmed = Substring(value)
            while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
            if trimmed != "/" { return String(trimmed) }
        }
        return "/tmp"
    }

    /// A new regular file `name` in the directory, open for writing, owner-only
    /// (openat(2) with `O_CREAT | O_EXCL | O_NOFOLLOW`).
    func create(_ name: String) throws(Errno) -> FileDescriptor {
        let fd = try Syscall.valueOrErrno {
            openat(directory.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }.get()
        return FileDescriptor(rawValue: fd)
    }

    /// Removes everything in the directory (files, and the files of directories one level
    /// down), leaving it empty for the next guest or for `remove()`.
    func empty() {
        for entry in entries(of: directory) {
            if unlinkat(directory.rawValue, entry, 0) == 0 { continue }
            // A directory (EISDIR; rmdir's rules give EPERM on some kernels): empty it first.
            guard let inner = try? Syscall.valueOrErrno({ openat(directory.rawValue, entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }).get() else { continue }
            let innerFD = FileDescriptor(rawValue: inner)
            for file in entries(of: innerFD) { unlinkat(inner, file, 0) }
            try? innerFD.close()
            unlinkat(directory.rawValue, entry, AT_REMOVEDIR)
        }
    }

    /// Empties the directory, removes it and closes both descriptors; once.
    func remove() {
        guard !removed else { return }
        removed = true
        empty()
        unlinkat(parent.rawValue, name, AT_REMOVEDIR)
        try? directory.close()
        try? parent.close()
    }

    /// The names in directory `fd` but `.` and `..`, at most `maxEntries` (readdir(3) on a
    /// duplicate, so `fd` itself stays open and its position does not matter).
    private func entries(of fd: FileDescriptor) -> [String] {
        guard let copy = try? Syscall.valueOrErrno({ dup(fd.rawValue) }).get() else { return [] }
        guard let stream = fdopendir(copy) else { close(copy); return [] }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while names.count < Self.maxEntries, let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
