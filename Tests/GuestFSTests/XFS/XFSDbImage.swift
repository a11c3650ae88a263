import Foundation
@testable import GuestFSBlock
@testable import GuestFSDisk
@testable import GuestFSFilesystem
@testable import GuestFSExt
@testable import GuestFSVfat
@testable import GuestFSISO9660
@testable import GuestFSXFS
@testable import GuestFS
@testable import GuestFSInspect
import Testing
import TestSupport

/// A real XFS image built with mkfs.xfs and filled on a kernel loop mount, with what the
/// directory and attribute decoders need taken from `xfs_db -r` (superblock geometry, an
/// inode's forks and extent lists) and blocks read straight from the image file: a test-only
/// stand-in for the inode reader of branch xfs-read.
final class XFSDbImage: @unchecked Sendable {
    let dir: String
    let path: String
    let mountPoint: String
    private(set) var geometry: XFSGeometry!
    private var handle: FileHandle?

    /// An empty filesystem (`mkfs.xfs <options>` on a sparse file under /dev/shm).
    init(_ options: String = "", sizeMiB: Int = 320) throws {
        var template = Array("/dev/shm/xfs-dir-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Shell.Failure(command: "mkdtemp", status: errno, stderr: "") }
        dir = String(cString: made)
        path = dir + "/fs.img"
        mountPoint = dir + "/mnt"
        try Shell.check("truncate -s \(sizeMiB)M \(q(path)) && mkfs.xfs -q -f \(options) \(q(path)) && mkdir \(q(mountPoint))")
    }

    /// A v4 or other filesystem this kernel cannot mount, from a `mkfs.xfs -p` prototype.
    init(options: String, proto: String, sizeMiB: Int = 320) throws {
        var template = Array("/dev/shm/xfs-dir-test.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Shell.Failure(command: "mkdtemp", status: errno, stderr: "") }
        dir = String(cString: made)
        path = dir + "/fs.img"
        mountPoint = dir + "/mnt"
        try proto.write(toFile: dir + "/proto", atomically: true, encoding: .utf8)
        try Shell.check("truncate -s \(sizeMiB)M \(q(path)) && mkfs.xfs -q -f \(options) -p \(q(dir + "/proto")) \(q(path))")
        try loadGeometry()
    }

    deinit {
        _ = try? Shell.run("mountpoint -q \(q(mountPoint)) && umount \(q(mountPoint))")
        try? handle?.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func q(_ s: String) -> String { Shell.quote(s) }

    /// Mounts the image, runs `body` on the mount point, unmounts, then reads the geometry.
    func withMount<T>(_ body: (String) throws -> T) throws -> T {
        try Shell.check("mount -o loop \(q(path)) \(q(mountPoint))")
        let result: T
        do { result = try body(mountPoint) } catch {
            _ = try? Shell.run("umount \(q(mountPoint))")
            throw error
        }
        try Shell.check("umount \(q(mountPoint))")
        try loadGeometry()
        return result
    }

    func sh(_ command: String) throws { try Shell.check("cd \(q(mountPoint)) && " + command) }

    private func db(_ commands: [String]) throws -> [String: String] {
        let out = try Shell.check("xfs_db -r " + commands.map { "-c \(q($0))" }.joined(separator: " ") + " " + q(path))
        var fields: [String: String] = [:]
        for line in out.split(separator: "\n") {
            guard let eq = line.range(of: " = ") else { continue }
            fields[String(line[..<eq.lowerBound])] = String(line[eq.upperBound...])
        }
        return fields
    }

    private func loadGeometry() throws {
        handle = FileHandle(forReadingAtPath: path)
        let f = try db(["sb 0", "print"])
        func n(_ k: String) throws -> UInt64 {
            guard let v = f[k] else { throw Shell.Failure(command: "xfs_db sb \(k)", status: 1, stderr: "missing") }
            return v.hasPrefix("0x") ? UInt64(v.dropFirst(2), radix: 16)! : UInt64(v)!
        }
        func uuid(_ k: String) -> [UInt8] {
            let hex = Array((f[k] ?? "").replacingOccurrences(of: "-", with: "").utf8)
            return stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0 ..< $0 + 2], as: UTF8.self), radix: 16)! }
        }
        let version = try n("versionnum")
        let v5 = version & 0xF == 5
        let incompat = v5 ? try n("features_incompat") : 0
        geometry = XFSGeometry(
            blockSize: UInt32(try n("blocksize")), blockLog: UInt8(try n("blocklog")), sectorSize: UInt32(try n("sectsize")),
            inodeSize: UInt16(try n("inodesize")), inodesPerBlockLog: UInt8(try n("inopblog")),
            agBlocks: UInt32(try n("agblocks")), agBlockLog: UInt8(try n("agblklog")), agCount: UInt32(try n("agcount")),
            dirBlockLog: UInt8(try n("dirblklog")), isV5: v5,
            hasFtype: v5 ? incompat & 1 != 0 : try n("features2") & 0x200 != 0,
            asciiCI: version & 0x4000 != 0,
            metaUUID: incompat & 4 != 0 ? uuid("meta_uuid") : uuid("uuid"),
            hasNrext64: incompat & 0x20 != 0, hasBigtime: incompat & 8 != 0)
    }

    /// The image's bytes at `offset`.
    func bytes(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard let handle else { throw Shell.Failure(command: "open \(path)", status: 1, stderr: "") }
        try handle.seek(toOffset: offset)
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    /// The block reader the decoders take, straight from the image file; counts its calls.
    let reads = Locked(0)
    var reader: XFSBlockReader {
        let geometry = self.geometry!
        return { [self] fsblock, count in
            reads.withValue { $0 += 1 }
            guard let at = geometry.byteOffset(fsblock: fsblock) else {
                throw ImageError(structure: "block \(fsblock)", reason: "outside the filesystem", errno: .ioError)
            }
            return try self.bytes(at: at, count: Int(count) << Int(geometry.blockLog))
        }
    }

    /// One inode's data or attribute fork and size, as xfs_db sees them.
    struct Forks {
        var data: XFSForkContents
        var attr: XFSForkContents?
        var size: UInt64
        var format: Int
        var attrFormat: Int
    }

    func forks(_ ino: UInt64) throws -> Forks {
        let f = try db(["inode \(ino)", "print core.size core.format core.aformat core.forkoff core.version", "convert inode \(ino) byte"])
        let out = try Shell.check("xfs_db -r -c \(q("inode \(ino)")) -c bmap -c \(q("convert inode \(ino) byte")) \(q(path))")
        let lines = out.split(separator: "\n")
        let byteLine = lines.last { $0.hasPrefix("0x") }!
        let inodeAt = UInt64(byteLine.split(separator: " ")[0].dropFirst(2), radix: 16)!
        func int(_ k: String) -> Int { Int(f[k]!.split(separator: " ")[0])! }
        let size = UInt64(int("core.size"))
        let core = int("core.version") == 3 ? 176 : 100
        let forkoff = int("core.forkoff") * 8
        let raw = try bytes(at: inodeAt, count: Int(geometry.inodeSize))
        func extents(_ which: String) -> [XFSExtent] {
            lines.filter { $0.hasPrefix(which + " offset ") }.map { line in
                let w = line.split(separator: " ")
                return XFSExtent(fileOffset: UInt64(w[2])!, startBlock: UInt64(w[4])!, blockCount: UInt64(w[7])!, unwritten: w[9] != "0")
            }
        }
        let format = int("core.format"), aformat = int("core.aformat")
        let data: XFSForkContents = format == 1
            ? .local(Array(raw[core ..< core + Int(size)])) : .extents(extents("data"))
        var attr: XFSForkContents?
        if forkoff != 0 {
            if aformat == 1 {
                let at = core + forkoff
                let total = Int(raw[at]) << 8 | Int(raw[at + 1])
                attr = .local(Array(raw[at ..< at + total]))
            } else {
                attr = .extents(extents("attr"))
            }
        }
        return Forks(data: data, attr: attr, size: size, format: format, attrFormat: aformat)
    }

    func directory(_ ino: UInt64) throws -> XFSDirectoryReader {
        let f = try forks(ino)
        return XFSDirectoryReader(geometry: geometry, inode: ino, fork: f.data, size: f.size, read: reader)
    }
}

/// What the kernel's mount shows of a directory: name → (inode, DT_* type).
enum KernelView {
    static func directory(_ path: String) throws -> [[UInt8]: (ino: UInt64, type: UInt8)] {
        guard let d = opendir(path) else { throw Shell.Failure(command: "opendir \(path)", status: errno, stderr: "") }
        defer { closedir(d) }
        var out: [[UInt8]: (UInt64, UInt8)] = [:]
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            out[name] = (UInt64(e.pointee.d_ino), e.pointee.d_type)
        }
        return out
    }

    static func inode(_ path: String) throws -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw Shell.Failure(command: "stat \(path)", status: errno, stderr: "") }
        return UInt64(st.st_ino)
    }
}
