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

/// setattr (chmod, chown, truncate, utimens with UTIME_NOW and UTIME_OMIT), setxattr and
/// removexattr. Permission checks are the kernel's (default_permissions).
extension FuseServer {
    func setattr(_ request: consuming Request, inode: UInt64, attributes st: stat, toSet: Int32) {
        do throws(FuseError) {
            let node = try writableNode(inode)
            var changes = AttributeChanges()
            if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = UInt16(truncatingIfNeeded: st.st_mode) & 0o7777 }
            if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = st.st_uid }
            if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = st.st_gid }
            if toSet & FUSE_SET_ATTR_SIZE != 0 {
                guard st.st_size >= 0 else { throw FuseError(.invalidArgument) }
                changes.size = UInt64(st.st_size)
            }
            if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 {
                changes.accessTime = .now
            } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
                changes.accessTime = .at(Timestamp(seconds: Int64(st.st_atim.tv_sec), nanoseconds: Int32(st.st_atim.tv_nsec)))
            }
            if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 {
                changes.modificationTime = .now
            } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
                changes.modificationTime = .at(Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec)))
            }
            if toSet & FUSE_SET_ATTR_CTIME != 0 {
                changes.changeTime = Timestamp(seconds: Int64(st.st_ctim.tv_sec), nanoseconds: Int32(st.st_ctim.tv_nsec))
            }
            do { try tree.writableFilesystem(of: node).setAttributes(node.inode, changes) } catch { throw FuseError(wrapping: error) }
            request.reply(attributes: try attributes(node), timeout: options.attrTimeout)
        } catch {
            request.reply(error)
        }
    }

    /// XATTR_CREATE and XATTR_REPLACE (sys/xattr.h).
    func setxattr(_ request: consuming Request, inode: UInt64, name: String, value: [UInt8], flags: Int32) {
        do throws(FuseError) {
            let node = try writableNode(inode)
            let mode: XattrSetMode
            switch flags {
            case 0: mode = .createOrReplace
            case 1: mode = .create
            case 2: mode = .replace
            default: throw FuseError(.invalidArgument)
            }
            do { try tree.writableFilesystem(of: node).setXattr(node.inode, name: name, value: value, mode: mode) } catch {
                throw FuseError(wrapping: error)
            }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }

    func removexattr(_ request: consuming Request, inode: UInt64, name: String) {
        do throws(FuseError) {
            let node = try writableNode(inode)
            do { try tree.writableFilesystem(of: node).removeXattr(node.inode, name: name) } catch { throw FuseError(wrapping: error) }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }
}
