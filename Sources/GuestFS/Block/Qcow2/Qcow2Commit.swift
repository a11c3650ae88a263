import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// `imagemount commit OVERLAY`: the overlay's allocated clusters written into its backing
/// file, as `qemu-img commit` does (QEMU's block/commit.c: copy every range the top image
/// allocates, flush the base, then empty the top).
///
/// Crash safety comes from the order, the same as QEMU's:
/// 1. The overlay is only read while its clusters are copied; the base changes only inside the
///    guest ranges the overlay allocates. Until step 3, the chain overlay → base reads exactly
///    as before whatever point a crash stops at, and the commit can simply be run again.
/// 2. The base is flushed (fdatasync, and for a qcow2 base its metadata written and closed clean).
/// 3. Only then is the overlay emptied (unless `keepOverlay`): a new empty overlay naming the
///    same backing file is written beside it, fsynced, and renamed over it; the folder is
///    fsynced. A crash before the rename leaves the full overlay (reading the same as the base
///    now does), after it the empty one: never a half-emptied file.
extension Qcow2Overlay {
    package struct CommitResult: Sendable, Equatable {
        /// The backing file written, resolved as it was opened.
        package var backingPath: String
        /// Guest bytes copied as data, and written as zeros.
        package var dataBytes: UInt64
        package var zeroBytes: UInt64
    }

    /// Guest bytes moved per read and write.
    static let commitChunk = 4 << 20

    /// `opened` runs once the overlay and its backing file are open, before a byte of the
    /// overlay's tables is read: the command enters its sandbox there.
    package static func commit(overlay path: String, keepOverlay: Bool, opened: () throws -> Void = {}) throws -> CommitResult {
        // Opened for writing when it will be emptied, so that QEMU's write lock says no one
        // else (a running mount, a VM) writes to it meanwhile; it is still only read here.
        let file = try RawImage(path: path, writable: !keepOverlay)
        _ = try file.lockLikeQEMU()
        let meta = try Qcow2Metadata.read(from: file)
        func bad(_ reason: String, errno: Errno = .invalidArgument) -> ImageError {
            ImageError(path: path, structure: "commit", reason: reason, errno: errno)
        }
        guard let name = meta.backingFile else { throw bad("the image has no backing file: there is nothing to commit to") }
        guard meta.header.cryptMethod == 0 else { throw bad("committing an encrypted overlay is not supported", errno: .notSupported) }
        guard meta.extensions.externalDataFile == nil else {
            throw bad("committing an overlay with an external data file is not supported", errno: .notSupported)
        }
        if !keepOverlay, !meta.snapshots.isEmpty {
            throw bad("the overlay has internal snapshots, which emptying it would drop: use -d to keep it as it is")
        }
        let resolved = ImageOpener.resolve(name, relativeTo: path)
        var backingFormat: ImageFormat?
        if let stored = meta.extensions.backingFormat {
            guard let known = ImageFormat(rawValue: stored) else {
                throw bad("backing file format '\(stored)' is not supported", errno: .notSupported)
            }
            backingFormat = known
        }
        // The base, writable, with a writer's lock: the backing format the overlay records
        // vouches for it, as it does when the chain is read.
        let base = try ImageOpener.open(path: resolved, options: ImageOpenOptions(format: backingFormat, writable: true))
        // Emptying needs the base's format (probed when the overlay does not record it).
        let format = try backingFormat ?? ImageOpener.probe(RawImage(path: resolved, writable: false))
        try opened()
        guard base.isWritable else { throw bad("backing file '\(resolved)' cannot be opened for writing", errno: .readOnlyFileSystem) }
        let top = try Qcow2Image(file: file, options: ImageOpenOptions(format: .qcow2, writable: false)) { _, _ in base }
        guard base.size >= top.size else {
            throw bad("backing file '\(resolved)' (\(base.size) bytes) is smaller than the overlay (\(top.size) bytes); resizing it is not supported",
                      errno: .notSupported)
        }

        var result = CommitResult(backingPath: resolved, dataBytes: 0, zeroBytes: 0)
        var buffer = [UInt8](repeating: 0, count: commitChunk)
        var offset: UInt64 = 0
        // Bounded: every extent must be at least one byte long (checked: a damaged map must
        // not spin here), so the loop ends at top.size.
        while offset < top.size {
            let want = Int(min(top.size - offset, UInt64(Int32.max)))
            let extent = try top.mapping(guestOffset: offset, length: want)
            let length = UInt64(extent.length)
            guard length > 0, length <= UInt64(want) else {
                throw bad("the overlay's map gives an extent of \(length) bytes at guest byte \(offset)", errno: .ioError)
            }
            switch extent.kind {
            case .unallocated:
                break
            case .zero:
                try base.writeZeros(at: offset, length: extent.length)
                result.zeroBytes += length
            case .data, .compressed:
                var done: UInt64 = 0
                while done < length {
                    let n = Int(min(UInt64(commitChunk), length - done))
                    try buffer.withUnsafeMutableBytes { b in
                        let part = UnsafeMutableRawBufferPointer(rebasing: b[..<n])
                        try top.read(into: part, at: offset + done)
                        try base.write(UnsafeRawBufferPointer(part), at: offset + done)
                    }
                    done += UInt64(n)
                }
                result.dataBytes += length
            }
            offset += length
        }
        try base.flush()
        if let qcow2 = base as? Qcow2Image { try qcow2.close() }

        if !keepOverlay {
            let empty = try image(virtualSize: top.size, backingFile: name, backingFormat: format)
            let temporary = path + ".imagemount-commit"
            try writeNew(empty, at: temporary, exclusive: false)
            guard rename(temporary, path) == 0 else {
                let e = Errno(rawValue: errno)
                unlink(temporary)
                throw ImageError(path: path, structure: "commit", reason: "the base is written, but emptying the overlay failed: rename: \(e.description)", errno: e)
            }
            syncFolder(of: path)
        }
        return result
    }
}
