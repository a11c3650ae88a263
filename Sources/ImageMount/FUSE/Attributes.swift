import CFuse
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
#if canImport(Glibc)
import Glibc
#endif

/// `struct stat` from a node's attributes, with the values the kernel's driver would show.
enum Attributes {
    /// st_ino: the node id for the filesystem at `/`, so that `stat` through the mount and
    /// through the kernel's own mount agree (ext: the inode number); filesystems mounted below
    /// it carry their index in the high bits so that numbers stay unique within the one FUSE
    /// mount (bit 32 up for ids below 2^32, as ext's are; bit 48 up for larger ids).
    static func inodeNumber(_ node: GuestNode) -> UInt64 {
        guard node.mount > 0 else { return node.inode }
        let shift: UInt64 = node.inode >> 32 == 0 ? 32 : 48
        return UInt64(node.mount) << shift | node.inode
    }

    static func stat(_ a: NodeAttributes, node: GuestNode, blockSize: UInt32, uid: UInt32?, gid: UInt32?) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = ino_t(inodeNumber(node))
        st.st_mode = mode_t(a.mode)
        st.st_nlink = nlink_t(a.links)
        st.st_uid = uid ?? a.uid
        st.st_gid = gid ?? a.gid
        if a.type == .characterDevice || a.type == .blockDevice {
            st.st_rdev = dev_t(deviceNumber(major: a.rdevMajor, minor: a.rdevMinor))
        }
        st.st_size = off_t(Int64(bitPattern: a.size))
        st.st_blocks = blkcnt_t(a.blocks512)
        st.st_blksize = blksize_t(blockSize)
        st.st_atim = timespec(a.atime)
        st.st_mtim = timespec(a.mtime)
        st.st_ctim = timespec(a.ctime)
        return st
    }

    /// glibc's makedev (sys/sysmacros.h, a macro Swift cannot call): 12 bits of major and 20 of
    /// minor in the classic positions, the rest above.
    static func deviceNumber(major: UInt32, minor: UInt32) -> UInt64 {
        let ma = UInt64(major), mi = UInt64(minor)
        return (ma & 0xffff_f000) << 32 | (ma & 0xfff) << 8 | (mi & 0xffff_ff00) << 12 | (mi & 0xff)
    }

    static func timespec(_ t: Timestamp) -> Glibc.timespec {
        Glibc.timespec(tv_sec: Int(t.seconds), tv_nsec: Int(t.nanoseconds))
    }

    /// The S_IF* type bits for a directory entry's type (d_type for readdir).
    static func mode(type: NodeType) -> mode_t { mode_t(type.modeBits) }
}
