import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A new, empty qcow2 image over a backing file (`--overlay FILE`), and writing an overlay's
/// allocated clusters back into its backing file (`imagemount commit`, as `qemu-img commit`).
///
/// The created file is what `qemu-img create -f qcow2 -b BACKING -F FORMAT` makes, minimally:
/// a version 3 header (qcow2 spec, "Header") with the backing format extension ("Header
/// extensions", type 0xE2792ACA) and the backing name in the first cluster, a one-cluster
/// refcount table, one refcount block (16-bit refcounts, refcount_order 4) and an all-zero L1
/// table. Every cluster after that is allocated by `Qcow2Writer`, which grows the refcounts.
package enum Qcow2Overlay {
    /// 64 KiB clusters, qemu-img's default.
    static let clusterBits = 16
    /// qcow2 spec, "Header": header_length of a version 3 header without the compression type byte.
    static let headerLength = 104
    /// qcow2 spec, "Header extensions": the backing file format name.
    static let backingFormatExtension: UInt32 = 0xE279_2ACA

    /// The bytes of an empty overlay of `virtualSize` bytes over `backingFile` (as stored: the
    /// name qcow2 readers resolve against the overlay's folder when relative) of `backingFormat`.
    package static func image(virtualSize: UInt64, backingFile: String, backingFormat: ImageFormat) throws -> [UInt8] {
        let clusterSize = 1 << clusterBits
        let name = Array(backingFile.utf8)
        let format = Array(backingFormat.rawValue.utf8)
        func bad(_ reason: String) -> ImageError {
            ImageError(path: backingFile, structure: "overlay", reason: reason, errno: .invalidArgument)
        }
        guard !name.isEmpty, name.count <= Qcow2.maxBackingFileNameLength, !name.contains(0) else {
            throw bad("backing file name of \(name.count) bytes cannot be stored (1 to \(Qcow2.maxBackingFileNameLength) bytes, no NUL)")
        }
        guard virtualSize > 0, virtualSize <= Qcow2.maxVirtualSize else { throw bad("virtual size \(virtualSize) is out of range") }
        let geometry = Qcow2Geometry(clusterBits: clusterBits, extendedL2: false)
        let l1Entries = geometry.l1EntriesNeeded(for: virtualSize)
        guard l1Entries * 8 <= UInt64(Qcow2.maxL1TableBytes) else { throw bad("virtual size \(virtualSize) needs too large an L1 table") }
        let l1Clusters = Int((l1Entries * 8 + UInt64(clusterSize) - 1) / UInt64(clusterSize))
        // Cluster 0 header, 1 refcount table, 2 refcount block, 3... L1 table.
        let refcountTable = UInt64(clusterSize), refcountBlock = UInt64(2 * clusterSize), l1Offset = UInt64(3 * clusterSize)
        let clusters = 3 + max(l1Clusters, 1)
        var bytes = [UInt8](repeating: 0, count: clusters * clusterSize)
        func put32(_ v: UInt32, _ at: Int) { BigEndianBytes.put32(v, into: &bytes, at: at) }
        func put64(_ v: UInt64, _ at: Int) { BigEndianBytes.put64(v, into: &bytes, at: at) }

        // Header extensions follow the header, each padded to 8 bytes; then the end marker, then the name.
        var at = headerLength
        put32(backingFormatExtension, at); put32(UInt32(format.count), at + 4)
        bytes.replaceSubrange((at + 8)..<(at + 8 + format.count), with: format)
        at += 8 + (format.count + 7) / 8 * 8
        at += 8 // end of extensions: type 0, length 0
        let nameOffset = at
        guard nameOffset + name.count <= clusterSize else { throw bad("backing file name does not fit in the first cluster") }
        bytes.replaceSubrange(nameOffset..<(nameOffset + name.count), with: name)

        put32(Qcow2.magic, 0)
        put32(3, 4)
        put64(UInt64(nameOffset), 8)
        put32(UInt32(name.count), 16)
        put32(UInt32(clusterBits), 20)
        put64(virtualSize, 24)
        put32(0, 32)                       // crypt_method: none
        put32(UInt32(l1Entries), 36)
        put64(l1Offset, 40)
        put64(refcountTable, 48)
        put32(1, 56)                       // refcount_table_clusters
        put32(0, 60); put64(0, 64)         // no snapshots
        put64(0, 72); put64(0, 80); put64(0, 88) // no feature bits
        put32(UInt32(Qcow2.v2RefcountOrder), 96)
        put32(UInt32(headerLength), 100)

        put64(refcountBlock, Int(refcountTable))
        for cluster in 0..<clusters { BigEndianBytes.put16(1, into: &bytes, at: Int(refcountBlock) + 2 * cluster) }
        return bytes
    }

    /// Creates the overlay file at `path` (which must not exist: an overlay never replaces a
    /// file), durably: written, fsynced, and its folder fsynced.
    package static func create(at path: String, virtualSize: UInt64, backingFile: String, backingFormat: ImageFormat) throws {
        let bytes = try image(virtualSize: virtualSize, backingFile: backingFile, backingFormat: backingFormat)
        try writeNew(bytes, at: path, exclusive: true)
    }

    /// Writes `bytes` to a new file at `path` (mode 0600: it will hold guest data), fsyncs it
    /// and its folder. `exclusive` refuses an existing file.
    static func writeNew(_ bytes: [UInt8], at path: String, exclusive: Bool) throws {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .writeOnly,
                                         options: exclusive ? [.create, .exclusiveCreate, .closeOnExec] : [.create, .truncate, .closeOnExec],
                                         permissions: [.ownerReadWrite])
        } catch let e as Errno {
            throw ImageError(path: path, structure: "overlay", reason: "cannot create: \(e.description)", errno: e)
        }
        do {
            try fd.closeAfter {
                _ = try fd.writeAll(toAbsoluteOffset: 0, bytes)
                try Syscall.dataSync(fd)
            }
        } catch {
            if exclusive { unlink(path) }
            throw ImageError(path: path, structure: "overlay", reason: "cannot write: \(error)", errno: (error as? Errno) ?? .ioError)
        }
        syncFolder(of: path)
    }

    /// The folder holding `path` (where an overlay's replacement is made and renamed).
    package static func folder(of path: String) -> String {
        path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    }

    /// fsync of the folder holding `path`, so that a created or renamed name is durable.
    static func syncFolder(of path: String) {
        if let dir = try? FileDescriptor.open(FilePath(folder(of: path)), .readOnly, options: [.directory, .closeOnExec]) {
            _ = fsync(dir.rawValue)
            try? dir.close()
        }
    }
}

extension Qcow2Overlay {
    /// What an overlay of the drive `drivePath` records: its absolute path (so the overlay works
    /// from any folder) and its format, the one given or probed. A probed format other than raw
    /// that the file's name does not vouch for is refused (README, "Probing"): recording it
    /// would vouch for it, and let the image's bytes name host files to open.
    package static func backing(for drivePath: String, format given: ImageFormat?) throws -> (path: String, format: ImageFormat) {
        if NBDURI.isNBD(drivePath) || RBDImageName.isRBD(drivePath) || drivePath.contains("://") {
            throw ImageError(path: drivePath, structure: "overlay", reason: "--overlay works over local image files only", errno: .notSupported)
        }
        guard let resolved = realpath(drivePath, nil) else {
            let e = Errno(rawValue: errno)
            throw ImageError(path: drivePath, structure: "overlay", reason: "cannot resolve: \(e.description)", errno: e)
        }
        let absolute = String(cString: resolved)
        free(resolved)
        if let given { return (absolute, given) }
        let probed = try ImageOpener.probe(RawImage(path: absolute, writable: false))
        guard probed == .raw || ImageOpener.formatIsVouched(path: drivePath, given: nil, probed: probed) else {
            throw ImageError(path: drivePath, structure: "overlay",
                             reason: "the image probes as \(probed.rawValue), but its format was probed, not given: add --format=\(probed.rawValue) before -a if you trust it",
                             errno: .notPermitted)
        }
        return (absolute, probed)
    }
}
