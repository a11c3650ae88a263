import CFuse
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One request from the kernel, which must be answered exactly once.
///
/// `Request` is non-copyable and every `reply…` method consumes it, so the compiler rejects a
/// second reply and a handler that drops the request without replying runs `deinit`, which
/// answers EIO (so `ls` never hangs) and stops a debug build (STYLE.md rule 3). `forget`
/// requests are answered with `replyNone()`, as fuse_lowlevel.h requires.
struct Request: ~Copyable {
    let raw: fuse_req_t
    /// What the request is, for `--debug` lines and the missing-reply check.
    let operation: StaticString
    let inode: UInt64

    init(_ raw: fuse_req_t, _ operation: StaticString, inode: UInt64, detail: @autoclosure () -> String = "") {
        self.raw = raw
        self.operation = operation
        self.inode = inode
        if DebugLog.enabled { DebugLog.request(operation, inode: inode, detail: detail()) }
    }

    deinit {
        // Reached only when a handler forgot to reply: our bug. Answer anyway so the caller
        // is not left waiting, and make tests fail loudly.
        DebugLog.always("BUG: no reply to \(operation) (inode \(inode)); answering EIO")
        _ = fuse_reply_err(raw, EIO)
        assertionFailure("FUSE request \(operation) was not answered")
    }

    /// The uid, gid and pid of the caller (fuse_req_ctx).
    /// The caller; `umask` is its umask for create, mkdir and mknod (sent because the server
    /// asks the kernel not to apply it: FUSE_CAP_DONT_MASK), 0 otherwise.
    var context: (uid: uid_t, gid: gid_t, pid: pid_t, umask: UInt16) {
        let ctx = fuse_req_ctx(raw)!.pointee
        return (ctx.uid, ctx.gid, ctx.pid, UInt16(truncatingIfNeeded: ctx.umask))
    }

    // MARK: Replies. Each wraps one fuse_reply_* function and consumes the request.

    /// Answers with an error (fuse_reply_err).
    consuming func reply(error: Errno) {
        log("error \(error.rawValue) (\(error))")
        _ = fuse_reply_err(raw, error.rawValue)
        discard self
    }

    /// Answers with a directory entry (fuse_reply_entry); `ino == 0` is a cached negative entry.
    consuming func reply(entry: fuse_entry_param) {
        var copy = entry
        log("entry ino \(entry.ino)")
        _ = fuse_reply_entry(raw, &copy)
        discard self
    }

    /// Answers a create with the new entry and its open handle (fuse_reply_create).
    consuming func reply(create entry: fuse_entry_param, open info: fuse_file_info) {
        var e = entry, i = info
        log("created ino \(entry.ino) fh \(info.fh)")
        _ = fuse_reply_create(raw, &e, &i)
        discard self
    }

    /// Answers a write with the number of bytes written (fuse_reply_write).
    consuming func reply(written: Int) {
        log("wrote \(written)")
        _ = fuse_reply_write(raw, written)
        discard self
    }

    /// Answers with attributes (fuse_reply_attr).
    consuming func reply(attributes: stat, timeout: Double) {
        var copy = attributes
        log("attr mode 0o\(String(attributes.st_mode, radix: 8)) size \(attributes.st_size)")
        _ = fuse_reply_attr(raw, &copy, timeout)
        discard self
    }

    /// Answers with a symlink target (fuse_reply_readlink).
    consuming func reply(link: [UInt8]) {
        log("link \(link.count) bytes")
        var terminated = link
        terminated.append(0)
        _ = terminated.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { fuse_reply_readlink(raw, $0.baseAddress) }
        }
        discard self
    }

    /// Answers an open or opendir (fuse_reply_open).
    consuming func reply(open info: fuse_file_info) {
        var copy = info
        log("fh \(info.fh)")
        _ = fuse_reply_open(raw, &copy)
        discard self
    }

    /// Answers with bytes: file data, a directory listing, an xattr value (fuse_reply_buf).
    consuming func reply(buffer: UnsafeRawBufferPointer) {
        log("\(buffer.count) bytes")
        _ = fuse_reply_buf(raw, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        discard self
    }

    /// Answers with a small byte array (an xattr value or name list) (fuse_reply_buf).
    consuming func reply(bytes: [UInt8]) {
        log("\(bytes.count) bytes")
        _ = bytes.withUnsafeBytes { fuse_reply_buf(raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        discard self
    }

    /// Answers a size probe of getxattr/listxattr (fuse_reply_xattr).
    consuming func reply(xattrSize: Int) {
        log("xattr size \(xattrSize)")
        _ = fuse_reply_xattr(raw, xattrSize)
        discard self
    }

    /// Answers statfs (fuse_reply_statfs).
    consuming func reply(statfs: statvfs) {
        var copy = statfs
        log("statfs blocks \(statfs.f_blocks)")
        _ = fuse_reply_statfs(raw, &copy)
        discard self
    }

    /// Answers lseek (fuse_reply_lseek).
    consuming func reply(offset: Int64) {
        log("offset \(offset)")
        _ = fuse_reply_lseek(raw, off_t(offset))
        discard self
    }

    /// Answers success with no data (fuse_reply_err with 0), for release and access.
    consuming func replyOK() {
        log("ok")
        _ = fuse_reply_err(raw, 0)
        discard self
    }

    /// The non-answer forget and forget_multi require (fuse_reply_none).
    consuming func replyNone() {
        log("none")
        fuse_reply_none(raw)
        discard self
    }

    private func log(_ text: @autoclosure () -> String) {
        if DebugLog.enabled { DebugLog.reply(operation, inode: inode, detail: text()) }
    }
}
