import CFuse
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// write, fallocate, flush, fsync and fsyncdir.
extension FuseServer {
    /// Writes through libext2fs under the filesystem lock; open handles of the file map its
    /// blocks again before their next read.
    func write(_ request: consuming Request, inode: UInt64, data: UnsafeRawBufferPointer, offset: Int64, handle: UInt64) {
        do throws(FuseError) {
            let node = try writableNode(inode)
            guard offset >= 0 else { throw FuseError(.invalidArgument) }
            if case .file(_, let flags)? = handles.get(handle) { try flags.check(offset: offset, size: data.count) }
            let n: Int
            do { n = try tree.writableFilesystem(of: node).write(node.inode, at: UInt64(offset), data) } catch { throw FuseError(wrapping: error) }
            request.reply(written: n)
        } catch {
            request.reply(error)
        }
    }

    /// Mode 0 and FALLOC_FL_KEEP_SIZE allocate; FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE punches;
    /// other modes (collapse, insert, zero range) are EOPNOTSUPP, as for fuse2fs.
    func fallocate(_ request: consuming Request, inode: UInt64, mode: Int32, offset: Int64, length: Int64, handle: UInt64) {
        do throws(FuseError) {
            let node = try writableNode(inode)
            guard offset >= 0, length > 0 else { throw FuseError(.invalidArgument) }
            do {
                let fs = try tree.writableFilesystem(of: node)
                switch mode {
                case 0, Self.fallocKeepSize:
                    try fs.allocate(node.inode, at: UInt64(offset), length: UInt64(length), keepSize: mode == Self.fallocKeepSize)
                case Self.fallocKeepSize | Self.fallocPunchHole:
                    try fs.punchHole(node.inode, at: UInt64(offset), length: UInt64(length))
                default:
                    throw FuseError(.notSupported)
                }
            } catch {
                throw FuseError(wrapping: error)
            }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }

    /// FALLOC_FL_KEEP_SIZE and FALLOC_FL_PUNCH_HOLE (linux/falloc.h).
    static let fallocKeepSize: Int32 = 1
    static let fallocPunchHole: Int32 = 2

    /// close(2) of one descriptor: data is already on the device (writes are not buffered
    /// here, and the kernel's writeback cache is not asked for), so there is nothing to do;
    /// durability is fsync's. ENOSYS, as for fuse2fs, which has no flush: the kernel then
    /// never sends FLUSH again (fs/fuse/file.c, fuse_flush sets fc->no_flush) and close(2)
    /// succeeds, one round trip per close saved (bench/rw.sh's cp -a: 2 630).
    func flush(_ request: consuming Request, inode: UInt64, handle: UInt64) {
        request.reply(error: Errno(rawValue: ENOSYS))
    }

    /// fsync and fsyncdir: the filesystem's metadata written out and the device flushed.
    func fsync(_ request: consuming Request, inode: UInt64, handle: UInt64) {
        do throws(FuseError) {
            guard !options.readOnly else { request.replyOK(); return }
            let node = try node(inode)
            do { try tree.writableFilesystem(of: node).sync() } catch { throw FuseError(wrapping: error) }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }
}
