import CFuse
import GuestFS
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
        return ops
    }
}

/// The server a session's userdata points at (passed unretained: the server outlives the session).
private func server(_ userdata: UnsafeMutableRawPointer) -> FuseServer {
    Unmanaged<FuseServer>.fromOpaque(userdata).takeUnretainedValue()
}

private func server(_ req: fuse_req_t?) -> FuseServer {
    server(fuse_req_userdata(req)!)
}
