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

/// unlink, rmdir and rename. Names that a mount covers cannot go (EBUSY), and nothing moves
/// between two filesystems of the tree (EXDEV), as with the kernel's own mounts.
extension FuseServer {
    func unlink(_ request: consuming Request, parent: UInt64, name: [UInt8]) {
        do throws(FuseError) {
            let dir = try removableName(parent, name)
            do { try tree.writableFilesystem(of: dir).unlink(in: dir.inode, name: name) } catch { throw FuseError(wrapping: error) }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }

    func rmdir(_ request: consuming Request, parent: UInt64, name: [UInt8]) {
        do throws(FuseError) {
            let dir = try removableName(parent, name)
            do { try tree.writableFilesystem(of: dir).removeDirectory(in: dir.inode, name: name) } catch { throw FuseError(wrapping: error) }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }

    /// rename and renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE; RENAME_WHITEOUT is EINVAL).
    func rename(_ request: consuming Request, parent: UInt64, name: [UInt8], newParent: UInt64, newName: [UInt8], flags: UInt32) {
        do throws(FuseError) {
            let from = try removableName(parent, name)
            let to = try removableName(newParent, newName)
            guard from.mount == to.mount else { throw FuseError(.improperLink) }
            let renameFlags = RenameFlags(rawValue: flags)
            guard renameFlags.isSubset(of: [.noReplace, .exchange]) else { throw FuseError(.invalidArgument) }
            do {
                try tree.writableFilesystem(of: from).rename(from: from.inode, name, to: to.inode, newName, flags: renameFlags)
            } catch {
                throw FuseError(wrapping: error)
            }
            request.replyOK()
        } catch {
            request.reply(error)
        }
    }

    /// The directory node for a name about to be removed or replaced: writable, and not a mountpoint.
    private func removableName(_ parent: UInt64, _ name: [UInt8]) throws(FuseError) -> GuestNode {
        let dir = try writableNode(parent)
        if tree.isMountpoint(dir, name) { throw FuseError(.resourceBusy) }
        return dir
    }
}
