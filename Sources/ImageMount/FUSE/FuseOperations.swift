import CFuse
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// Everything the server implements, in one place: one method per low-level operation, each
/// taking the request it must answer. Operations missing here stay null in the table below,
/// so the kernel gets ENOSYS for them (STYLE.md §2, "the whole operation surface is one table").
protocol FuseOperations: AnyObject {
    func initialize(_ conn: UnsafeMutablePointer<fuse_conn_info>)
    func lookup(_ request: consuming Request, parent: UInt64, name: [UInt8])
    func forget(_ request: consuming Request, inode: UInt64, count: UInt64)
    func forgetMany(_ request: consuming Request, _ items: UnsafeBufferPointer<fuse_forget_data>)
    func getattr(_ request: consuming Request, inode: UInt64)
    func readlink(_ request: consuming Request, inode: UInt64)
    func open(_ request: consuming Request, inode: UInt64, info: fuse_file_info)
    func read(_ request: consuming Request, inode: UInt64, size: Int, offset: Int64, handle: UInt64)
    func release(_ request: consuming Request, inode: UInt64, handle: UInt64)
    func opendir(_ request: consuming Request, inode: UInt64, info: fuse_file_info)
    func readdir(_ request: consuming Request, inode: UInt64, size: Int, offset: Int64, handle: UInt64, plus: Bool)
    func releasedir(_ request: consuming Request, inode: UInt64, handle: UInt64)
    func statfs(_ request: consuming Request, inode: UInt64)
    func getxattr(_ request: consuming Request, inode: UInt64, name: String, size: Int)
    func listxattr(_ request: consuming Request, inode: UInt64, size: Int)
    func access(_ request: consuming Request, inode: UInt64, mask: Int32)
    func lseek(_ request: consuming Request, inode: UInt64, offset: Int64, whence: Int32, handle: UInt64)
    // Writing (Handlers+Create, Handlers+Remove, Handlers+Write, Handlers+SetAttributes);
    // on a read-only mount each answers EROFS, as the kernel's own read-only ext4 would.
    func mknod(_ request: consuming Request, parent: UInt64, name: [UInt8], mode: UInt32, rdev: UInt64)
    func mkdir(_ request: consuming Request, parent: UInt64, name: [UInt8], mode: UInt32)
    func symlink(_ request: consuming Request, target: [UInt8], parent: UInt64, name: [UInt8])
    func link(_ request: consuming Request, inode: UInt64, newParent: UInt64, newName: [UInt8])
    func create(_ request: consuming Request, parent: UInt64, name: [UInt8], mode: UInt32, info: fuse_file_info)
    func unlink(_ request: consuming Request, parent: UInt64, name: [UInt8])
    func rmdir(_ request: consuming Request, parent: UInt64, name: [UInt8])
    func rename(_ request: consuming Request, parent: UInt64, name: [UInt8], newParent: UInt64, newName: [UInt8], flags: UInt32)
    func setattr(_ request: consuming Request, inode: UInt64, attributes: stat, toSet: Int32)
    func write(_ request: consuming Request, inode: UInt64, data: UnsafeRawBufferPointer, offset: Int64, handle: UInt64)
    func fallocate(_ request: consuming Request, inode: UInt64, mode: Int32, offset: Int64, length: Int64, handle: UInt64)
    func flush(_ request: consuming Request, inode: UInt64, handle: UInt64)
    func fsync(_ request: consuming Request, inode: UInt64, handle: UInt64)
    func setxattr(_ request: consuming Request, inode: UInt64, name: String, value: [UInt8], flags: Int32)
    func removexattr(_ request: consuming Request, inode: UInt64, name: String)
}

/// The `fuse_lowlevel_ops` table: each slot is a C-callable closure that finds the server
/// through the session's userdata, wraps the raw request in a `Request` and calls the
/// matching `FuseOperations` method. Swift can express these trampolines, so they are not C.
enum OperationsTable {
    static func make() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let userdata, let conn else { return }
            server(userdata).initialize(conn)
        }
        ops.lookup = { req, parent, name in
            let bytes = name.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
            server(req).lookup(Request(req!, "lookup", inode: parent, detail: String(decoding: bytes, as: UTF8.self)),
                               parent: parent, name: bytes)
        }
        ops.forget = { req, ino, nlookup in
            server(req).forget(Request(req!, "forget", inode: ino, detail: "n=\(nlookup)"), inode: ino, count: nlookup)
        }
        ops.forget_multi = { req, count, forgets in
            server(req).forgetMany(Request(req!, "forget_multi", inode: 0, detail: "count=\(count)"),
                                   UnsafeBufferPointer(start: forgets, count: count))
        }
        ops.getattr = { req, ino, _ in
            server(req).getattr(Request(req!, "getattr", inode: ino), inode: ino)
        }
        ops.readlink = { req, ino in
            server(req).readlink(Request(req!, "readlink", inode: ino), inode: ino)
        }
        ops.open = { req, ino, fi in
            server(req).open(Request(req!, "open", inode: ino, detail: "flags=0o\(String(fi!.pointee.flags, radix: 8))"),
                             inode: ino, info: fi!.pointee)
        }
        ops.read = { req, ino, size, off, fi in
            server(req).read(Request(req!, "read", inode: ino, detail: "size=\(size) off=\(off)"),
                             inode: ino, size: size, offset: Int64(off), handle: fi!.pointee.fh)
        }
        ops.release = { req, ino, fi in
            server(req).release(Request(req!, "release", inode: ino), inode: ino, handle: fi!.pointee.fh)
        }
        ops.opendir = { req, ino, fi in
            server(req).opendir(Request(req!, "opendir", inode: ino), inode: ino, info: fi!.pointee)
        }
        ops.readdir = { req, ino, size, off, fi in
            server(req).readdir(Request(req!, "readdir", inode: ino, detail: "size=\(size) off=\(off)"),
                                inode: ino, size: size, offset: Int64(off), handle: fi!.pointee.fh, plus: false)
        }
        ops.readdirplus = { req, ino, size, off, fi in
            server(req).readdir(Request(req!, "readdirplus", inode: ino, detail: "size=\(size) off=\(off)"),
                                inode: ino, size: size, offset: Int64(off), handle: fi!.pointee.fh, plus: true)
        }
        ops.releasedir = { req, ino, fi in
            server(req).releasedir(Request(req!, "releasedir", inode: ino), inode: ino, handle: fi!.pointee.fh)
        }
        ops.statfs = { req, ino in
            server(req).statfs(Request(req!, "statfs", inode: ino), inode: ino)
        }
        ops.getxattr = { req, ino, name, size in
            let key = name.map { String(cString: $0) } ?? ""
            server(req).getxattr(Request(req!, "getxattr", inode: ino, detail: "\(key) size=\(size)"),
                                 inode: ino, name: key, size: size)
        }
        ops.listxattr = { req, ino, size in
            server(req).listxattr(Request(req!, "listxattr", inode: ino, detail: "size=\(size)"), inode: ino, size: size)
        }
        ops.access = { req, ino, mask in
            server(req).access(Request(req!, "access", inode: ino, detail: "mask=\(mask)"), inode: ino, mask: mask)
        }
        ops.lseek = { req, ino, off, whence, fi in
            server(req).lseek(Request(req!, "lseek", inode: ino, detail: "off=\(off) whence=\(whence)"),
                              inode: ino, offset: Int64(off), whence: whence, handle: fi!.pointee.fh)
        }
        ops.mknod = { req, parent, name, mode, rdev in
            let bytes = cName(name)
            server(req).mknod(Request(req!, "mknod", inode: parent, detail: "\(String(decoding: bytes, as: UTF8.self)) mode=0o\(String(mode, radix: 8))"),
                              parent: parent, name: bytes, mode: UInt32(mode), rdev: UInt64(rdev))
        }
        ops.mkdir = { req, parent, name, mode in
            let bytes = cName(name)
            server(req).mkdir(Request(req!, "mkdir", inode: parent, detail: String(decoding: bytes, as: UTF8.self)),
                              parent: parent, name: bytes, mode: UInt32(mode))
        }
        ops.symlink = { req, link, parent, name in
            let bytes = cName(name)
            server(req).symlink(Request(req!, "symlink", inode: parent, detail: String(decoding: bytes, as: UTF8.self)),
                                target: cName(link), parent: parent, name: bytes)
        }
        ops.link = { req, ino, newparent, newname in
            let bytes = cName(newname)
            server(req).link(Request(req!, "link", inode: ino, detail: "to \(newparent)/\(String(decoding: bytes, as: UTF8.self))"),
                             inode: ino, newParent: newparent, newName: bytes)
        }
        ops.create = { req, parent, name, mode, fi in
            let bytes = cName(name)
            server(req).create(Request(req!, "create", inode: parent, detail: "\(String(decoding: bytes, as: UTF8.self)) mode=0o\(String(mode, radix: 8))"),
                               parent: parent, name: bytes, mode: UInt32(mode), info: fi!.pointee)
        }
        ops.unlink = { req, parent, name in
            let bytes = cName(name)
            server(req).unlink(Request(req!, "unlink", inode: parent, detail: String(decoding: bytes, as: UTF8.self)), parent: parent, name: bytes)
        }
        ops.rmdir = { req, parent, name in
            let bytes = cName(name)
            server(req).rmdir(Request(req!, "rmdir", inode: parent, detail: String(decoding: bytes, as: UTF8.self)), parent: parent, name: bytes)
        }
        ops.rename = { req, parent, name, newparent, newname, flags in
            let from = cName(name), to = cName(newname)
            server(req).rename(Request(req!, "rename", inode: parent,
                                       detail: "\(String(decoding: from, as: UTF8.self)) -> \(newparent)/\(String(decoding: to, as: UTF8.self)) flags=\(flags)"),
                               parent: parent, name: from, newParent: newparent, newName: to, flags: flags)
        }
        ops.setattr = { req, ino, attr, toSet, _ in
            server(req).setattr(Request(req!, "setattr", inode: ino, detail: "to_set=0x\(String(toSet, radix: 16))"),
                                inode: ino, attributes: attr!.pointee, toSet: toSet)
        }
        ops.write = { req, ino, buf, size, off, fi in
            server(req).write(Request(req!, "write", inode: ino, detail: "size=\(size) off=\(off)"), inode: ino,
                              data: UnsafeRawBufferPointer(start: buf, count: size), offset: Int64(off), handle: fi!.pointee.fh)
        }
        ops.fallocate = { req, ino, mode, off, length, fi in
            server(req).fallocate(Request(req!, "fallocate", inode: ino, detail: "mode=\(mode) off=\(off) len=\(length)"),
                                  inode: ino, mode: mode, offset: Int64(off), length: Int64(length), handle: fi!.pointee.fh)
        }
        ops.flush = { req, ino, fi in
            server(req).flush(Request(req!, "flush", inode: ino), inode: ino, handle: fi!.pointee.fh)
        }
        ops.fsync = { req, ino, _, fi in
            server(req).fsync(Request(req!, "fsync", inode: ino), inode: ino, handle: fi!.pointee.fh)
        }
        ops.fsyncdir = { req, ino, _, fi in
            server(req).fsync(Request(req!, "fsyncdir", inode: ino), inode: ino, handle: fi!.pointee.fh)
        }
        ops.setxattr = { req, ino, name, value, size, flags in
            let key = name.map { String(cString: $0) } ?? ""
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            server(req).setxattr(Request(req!, "setxattr", inode: ino, detail: "\(key) size=\(size) flags=\(flags)"),
                                 inode: ino, name: key, value: bytes, flags: flags)
        }
        ops.removexattr = { req, ino, name in
            let key = name.map { String(cString: $0) } ?? ""
            server(req).removexattr(Request(req!, "removexattr", inode: ino, detail: key), inode: ino, name: key)
        }
        return ops
    }
}

/// A name the kernel passed, as bytes (names need not be UTF-8).
private func cName(_ name: UnsafePointer<CChar>?) -> [UInt8] {
    name.map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) } ?? []
}

/// The server a session's userdata points at (passed unretained: the server outlives the session).
private func server(_ userdata: UnsafeMutableRawPointer) -> FuseServer {
    Unmanaged<FuseServer>.fromOpaque(userdata).takeUnretainedValue()
}

private func server(_ req: fuse_req_t?) -> FuseServer {
    server(fuse_req_userdata(req)!)
}
