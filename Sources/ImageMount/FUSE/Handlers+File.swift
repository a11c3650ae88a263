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

/// Regular files and symlinks: open, read, lseek, release, readlink.
extension FuseServer {
    func open(_ request: consuming Request, inode: UInt64, info: fuse_file_info) {
        tuneReadaheadOnce()
        do throws(FuseError) {
            let node = try node(inode)
            if info.flags & O_ACCMODE != O_RDONLY && tree.isReadOnly(node) { throw FuseError(.readOnlyFileSystem) }
            let file: any GuestFile
            do {
                let attributes = try tree.attributes(node)
                if attributes.isDirectory { throw FuseError(.isDirectory) }
                guard attributes.isRegular else { throw FuseError(.permissionDenied) }
                file = try tree.filesystem(of: node).openFile(node.inode)
            } catch { throw FuseError(wrapping: error) }
            // With FUSE_CAP_ATOMIC_O_TRUNC (asked for in init, and libfuse's default) the kernel
            // sends O_TRUNC here and no setattr: truncating is ours, with the times ext4's
            // handle_truncate sets (mtime and ctime, even on an empty file). Without the
            // capability the kernel strips O_TRUNC (fuse_send_open), so this test is right either way.
            if info.flags & O_TRUNC != 0 {
                do { try tree.writableFilesystem(of: node).truncate(node.inode, to: 0) } catch {
                    throw FuseError(wrapping: error)
                }
            }
            var out = info
            out.fh = handles.insert(.file(file, OpenFlags(info.flags)))
            applyOpenOptions(&out, node)
            request.reply(open: out)
        } catch {
            request.reply(error)
        }
    }

    /// Reads straight from the block device, outside the libext2fs lock (the map was
    /// resolved at open), so several reads run at once.
    func read(_ request: consuming Request, inode: UInt64, size: Int, offset: Int64, handle: UInt64) {
        guard case .file(let file, let flags)? = handles.get(handle) else {
            request.reply(error: .badFileDescriptor)
            return
        }
        guard offset >= 0 else { request.reply(error: .invalidArgument); return }
        do throws(FuseError) { try flags.check(offset: offset, size: size) } catch {
            request.reply(error)
            return
        }
        let lease = readBuffers.take(size: max(size, 1))
        defer { readBuffers.give(lease) }
        do {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: lease.buffer[..<size]), at: UInt64(offset))
            request.reply(buffer: UnsafeRawBufferPointer(rebasing: lease.buffer[..<n]))
        } catch {
            request.reply(FuseError(wrapping: error))
        }
    }

    /// SEEK_DATA and SEEK_HOLE (the kernel answers the other whence values itself), so `cp`
    /// and `tar` keep sparse files sparse.
    func lseek(_ request: consuming Request, inode: UInt64, offset: Int64, whence: Int32, handle: UInt64) {
        guard case .file(let file, _)? = handles.get(handle) else {
            request.reply(error: .badFileDescriptor)
            return
        }
        do {
            let size = Int64(file.size)
            guard offset >= 0, offset < size else { request.reply(error: Errno(rawValue: ENXIO)); return }
            let ranges = try file.dataRanges()
            switch whence {
            case Self.seekData:
                if let r = ranges.first(where: { Int64($0.offset + $0.length) > offset }) {
                    request.reply(offset: max(offset, Int64(r.offset)))
                } else {
                    request.reply(error: Errno(rawValue: ENXIO))
                }
            case Self.seekHole:
                var position = offset
                for r in ranges where Int64(r.offset) <= position && Int64(r.offset + r.length) > position {
                    position = Int64(r.offset + r.length)
                }
                request.reply(offset: min(position, size))
            default:
                request.reply(error: .invalidArgument)
            }
        } catch {
            request.reply(FuseError(wrapping: error))
        }
    }

    /// SEEK_DATA and SEEK_HOLE (linux/fs.h; GNU extensions Swift's Glibc does not show).
    static let seekData: Int32 = 3
    static let seekHole: Int32 = 4

    func release(_ request: consuming Request, inode: UInt64, handle: UInt64) {
        handles.remove(handle)
        request.replyOK()
    }

    func readlink(_ request: consuming Request, inode: UInt64) {
        do throws(FuseError) {
            let node = try node(inode)
            let target: [UInt8]
            do { target = try tree.filesystem(of: node).readlink(node.inode) } catch { throw FuseError(wrapping: error) }
            request.reply(link: target)
        } catch {
            request.reply(error)
        }
    }
}
