import CFuse
import GuestFS
#if canImport(Glibc)
import Glibc
#endif

/// `struct stat` from an ext inode, with the values the kernel's ext4 would show.
enum Attributes {
    /// st_ino: the ext inode number for the filesystem at `/`, so that `stat` through the mount
    /// and through the kernel's own ext4 agree; filesystems mounted below it carry their index
    /// in the high 32 bits so that numbers stay unique within the one FUSE mount.
    static func inodeNumber(_ node: GuestNode) -> UInt64 {
        UInt64(node.mount) << 32 | UInt64(node.inode)
    }

    static func stat(_ inode: Ext2Inode, node: GuestNode, blockSize: Int, uid: UInt32?, gid: UInt32?) -> Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = ino_t(inodeNumber(node))
        st.st_mode = mode_t(inode.mode)
        st.st_nlink = nlink_t(inode.links)
        st.st_uid = uid ?? inode.uid
        st.st_gid = gid ?? inode.gid
        if inode.fileType == Ext2Inode.typeCharDevice || inode.fileType == Ext2Inode.typeBlockDevice {
            st.st_rdev = dev_t(deviceNumber(major: inode.rdevMajor, minor: inode.rdevMinor))
        }
        st.st_size = off_t(Int64(bitPattern: inode.size))
        st.st_blocks = blkcnt_t(inode.blocks512)
        st.st_blksize = blksize_t(blockSize)
        st.st_atim = timespec(inode.atime)
        st.st_mtim = timespec(inode.mtime)
        st.st_ctim = timespec(inode.ctime)
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

    /// The S_IF* type bits for a directory entry's EXT2_FT_* type (d_type for readdir).
    static func mode(fileType: UInt8) -> mode_t { mode_t(DirEntry.modeBits(forFileType: fileType)) }
}
