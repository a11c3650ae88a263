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

/// getattr, statfs, access and extended attributes.
extension FuseServer {
    func getattr(_ request: consuming Request, inode: UInt64) {
        tuneReadaheadOnce()
        do throws(FuseError) {
            request.reply(attributes: try attributes(try node(inode)), timeout: options.attrTimeout)
        } catch {
            request.reply(error)
        }
    }

    /// Figures of the filesystem the inode lives on (each -m filesystem has its own), as the
    /// kernel's ext4_statfs computes them.
    func statfs(_ request: consuming Request, inode: UInt64) {
        let fs = tree.filesystem(of: inodes.node(inode) ?? tree.root)
        let u: FilesystemUsage
        do { u = try fs.usage() } catch {
            request.reply(FuseError(wrapping: error))
            return
        }
        var s = statvfs()
        s.f_bsize = UInt(u.blockSize)
        s.f_frsize = UInt(u.blockSize)
        s.f_blocks = fsblkcnt_t(u.totalBlocks)
        s.f_bfree = fsblkcnt_t(u.freeBlocks)
        s.f_bavail = fsblkcnt_t(u.availableBlocks)
        s.f_files = fsfilcnt_t(u.totalInodes)
        s.f_ffree = fsfilcnt_t(u.freeInodes)
        s.f_favail = fsfilcnt_t(u.freeInodes)
        s.f_namemax = UInt(u.maxNameLength)
        request.reply(statfs: s)
    }

    /// With default_permissions the kernel checks modes itself; what is left is existence and
    /// "no writing to a read-only mount".
    func access(_ request: consuming Request, inode: UInt64, mask: Int32) {
        do throws(FuseError) {
            let node = try node(inode)
            _ = try attributes(node)
            if mask & W_OK != 0 && tree.isReadOnly(node) { throw FuseError(.readOnlyFileSystem) }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }

    /// getxattr: a size of 0 asks for the value's length; a too-small buffer is ERANGE; no
    /// such attribute is ENODATA (fuse_lowlevel.h, getxattr).
    func getxattr(_ request: consuming Request, inode: UInt64, name: String, size: Int) {
        do throws(FuseError) {
            let value = try xattrs(inode).first { $0.name == name }?.value
            guard let value else { throw FuseError(.noData) }
            if size == 0 {
                request.reply(xattrSize: value.count)
            } else if value.count > size {
                throw FuseError(Errno(rawValue: ERANGE))
            } else {
                request.reply(bytes: value)
            }
        } catch {
            request.reply(error)
        }
    }

    /// listxattr: the names, each NUL-terminated, with the same size rules as getxattr.
    func listxattr(_ request: consuming Request, inode: UInt64, size: Int) {
        do throws(FuseError) {
            var names: [UInt8] = []
            for x in try xattrs(inode) { names += Array(x.name.utf8) + [0] }
            if size == 0 {
                request.reply(xattrSize: names.count)
            } else if names.count > size {
                throw FuseError(Errno(rawValue: ERANGE))
            } else {
                request.reply(bytes: names)
            }
        } catch {
            request.reply(error)
        }
    }

    private func xattrs(_ inode: UInt64) throws(FuseError) -> [Xattr] {
        let node = try node(inode)
        do { return try tree.filesystem(of: node).xattrs(node.inode) } catch { throw FuseError(wrapping: error) }
    }
}
