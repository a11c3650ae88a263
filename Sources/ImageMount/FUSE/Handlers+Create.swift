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

/// mknod, mkdir, symlink, link and create (passthrough_ll.c's lo_mknod_symlink, lo_link,
/// lo_create): each new entry is answered like a lookup, so it takes one lookup reference.
extension FuseServer {
    func mknod(_ request: consuming Request, parent: UInt64, name: [UInt8], mode: UInt32, rdev: UInt64) {
        let ctx = request.context
        do throws(FuseError) {
            let (major, minor) = Self.split(rdev)
            request.reply(entry: try newEntry(parent) { fs, dir in
                let inherited = try fs.inheritedACL(directory: dir.inode, mode: UInt16(truncatingIfNeeded: mode), umask: ctx.umask)
                let spec = NewInode(mode: inherited.mode, uid: ctx.uid, gid: ctx.gid, rdevMajor: major, rdevMinor: minor)
                let child = try fs.createNode(in: dir.inode, name: name, spec)
                try fs.applyInheritedACL(child, inherited)
                return child
            })
        } catch {
            request.reply(error)
        }
    }

    func mkdir(_ request: consuming Request, parent: UInt64, name: [UInt8], mode: UInt32) {
        let ctx = request.context
        do throws(FuseError) {
            request.reply(entry: try newEntry(parent) { fs, dir in
                let requested = UInt16(NodeType.directory.modeBits) | (UInt16(truncatingIfNeeded: mode) & 0o7777)
                let inherited = try fs.inheritedACL(directory: dir.inode, mode: requested, umask: ctx.umask)
                let child = try fs.makeDirectory(in: dir.inode, name: name, NewInode(mode: inherited.mode & 0o7777, uid: ctx.uid, gid: ctx.gid))
                try fs.applyInheritedACL(child, inherited)
                return child
            })
        } catch {
            request.reply(error)
        }
    }

    func symlink(_ request: consuming Request, target: [UInt8], parent: UInt64, name: [UInt8]) {
        let ctx = request.context
        do throws(FuseError) {
            request.reply(entry: try newEntry(parent) { fs, dir in
                try fs.makeSymlink(in: dir.inode, name: name, target: target, uid: ctx.uid, gid: ctx.gid)
            })
        } catch {
            request.reply(error)
        }
    }

    func link(_ request: consuming Request, inode: UInt64, newParent: UInt64, newName: [UInt8]) {
        do throws(FuseError) {
            let target = try node(inode)
            request.reply(entry: try newEntry(newParent) { fs, dir in
                guard target.mount == dir.mount else { throw FuseError(.improperLink) }
                try fs.link(target.inode, into: dir.inode, name: newName)
                return target.inode
            })
        } catch {
            request.reply(error)
        }
    }

    /// create: a new regular file, opened (the handle is the same kind open hands out).
    func create(_ request: consuming Request, parent: UInt64, name: [UInt8], mode: UInt32, info: fuse_file_info) {
        let ctx = request.context
        do throws(FuseError) {
            var created: GuestNode?
            let entry = try newEntry(parent) { fs, dir in
                let requested = UInt16(NodeType.regular.modeBits) | (UInt16(truncatingIfNeeded: mode) & 0o7777)
                let inherited = try fs.inheritedACL(directory: dir.inode, mode: requested, umask: ctx.umask)
                let child = try fs.createNode(in: dir.inode, name: name, NewInode(mode: inherited.mode, uid: ctx.uid, gid: ctx.gid))
                created = GuestNode(mount: dir.mount, inode: child)
                try fs.applyInheritedACL(child, inherited)
                return child
            }
            guard let node = created else { throw FuseError(.ioError) }
            let file: any GuestFile
            do { file = try tree.filesystem(of: node).openFile(node.inode) } catch {
                drop(entry.ino, count: 1)
                throw FuseError(wrapping: error)
            }
            var out = info
            out.fh = handles.insert(.file(file, OpenFlags(info.flags)))
            applyOpenOptions(&out, node)
            request.reply(create: entry, open: out)
        } catch {
            request.reply(error)
        }
    }

    // MARK: Helpers

    /// Runs `make` on the filesystem of directory `parent` (EROFS on a read-only mount) and
    /// answers with the entry of the inode it returns, taking one lookup reference.
    func newEntry(_ parent: UInt64, _ make: (any WritableGuestFilesystem, GuestNode) throws -> UInt64) throws(FuseError) -> fuse_entry_param {
        let dir = try writableNode(parent)
        let child: UInt64
        do { child = try make(tree.writableFilesystem(of: dir), dir) } catch { throw FuseError(wrapping: error) }
        return try entry(for: GuestNode(mount: dir.mount, inode: child))
    }

    /// The node for `inode`, on a mount that may be written (EROFS otherwise).
    func writableNode(_ inode: UInt64) throws(FuseError) -> GuestNode {
        guard !options.readOnly else { throw FuseError(.readOnlyFileSystem) }
        let node = try node(inode)
        guard !tree.isReadOnly(node) else { throw FuseError(.readOnlyFileSystem) }
        return node
    }

    /// glibc's major() and minor() of a dev_t (sys/sysmacros.h macros).
    static func split(_ dev: UInt64) -> (major: UInt32, minor: UInt32) {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
        let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
        return (UInt32(truncatingIfNeeded: major), UInt32(truncatingIfNeeded: minor))
    }
}
