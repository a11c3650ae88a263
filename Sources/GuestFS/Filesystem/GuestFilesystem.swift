#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import SystemPackage

// The filesystem protocol: the one seam between the filesystem drivers (ext, vfat, iso9660,
// and the later xfs and ntfs) and everything above them (the mount tree, inspection, the FUSE
// server, copy-in/out and the commands). Its shape is what those layers really use, as
// libfuse's low-level operations are: nodes named by a 64-bit id, names as bytes, errors that
// carry an errno (ImageError or Errno), attributes in one neutral struct.

/// A point in time with nanoseconds (seconds since the epoch may be negative).
public struct Timestamp: Sendable, Equatable {
    public var seconds: Int64
    public var nanoseconds: Int32
    public init(seconds: Int64, nanoseconds: Int32) { self.seconds = seconds; self.nanoseconds = nanoseconds }
}

/// The type of a node, with the S_IFMT bits of st_mode and the DT_* value readdir gives.
public enum NodeType: UInt8, Sendable, Equatable {
    case unknown = 0, fifo = 1, characterDevice = 2, directory = 4, blockDevice = 6, regular = 8, symlink = 10, socket = 12

    /// The S_IFMT bits (inode(7)).
    public var modeBits: UInt32 { UInt32(rawValue) << 12 }

    public init(mode: UInt32) { self = NodeType(rawValue: UInt8(truncatingIfNeeded: (mode >> 12) & 0xf)) ?? .unknown }
}

/// What `stat` shows of a node, whichever filesystem holds it.
public struct NodeAttributes: Sendable, Equatable {
    public var node: UInt64
    /// S_IFMT type bits and the permission bits.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    /// 512-byte units, as st_blocks counts.
    public var blocks512: UInt64
    public var links: UInt32
    public var atime: Timestamp
    public var mtime: Timestamp
    public var ctime: Timestamp
    /// Birth time, where the filesystem records one.
    public var crtime: Timestamp?
    /// Device number of character and block device nodes.
    public var rdevMajor: UInt32
    public var rdevMinor: UInt32
    /// The node's generation (FUSE's entry generation, NFS handles); 0 where there is none.
    public var generation: UInt32

    public init(node: UInt64, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, size: UInt64 = 0, blocks512: UInt64 = 0,
                links: UInt32 = 1, atime: Timestamp, mtime: Timestamp, ctime: Timestamp, crtime: Timestamp? = nil,
                rdevMajor: UInt32 = 0, rdevMinor: UInt32 = 0, generation: UInt32 = 0) {
        self.node = node; self.mode = mode; self.uid = uid; self.gid = gid; self.size = size
        self.blocks512 = blocks512; self.links = links; self.atime = atime; self.mtime = mtime
        self.ctime = ctime; self.crtime = crtime; self.rdevMajor = rdevMajor; self.rdevMinor = rdevMinor
        self.generation = generation
    }

    public var type: NodeType { NodeType(mode: mode) }
    public var permissions: UInt32 { mode & 0o7777 }
    public var isDirectory: Bool { type == .directory }
    public var isRegular: Bool { type == .regular }
    public var isSymlink: Bool { type == .symlink }
}

/// One name in a directory ("." and ".." are never listed).
public struct DirectoryEntry: Sendable, Equatable {
    public var name: [UInt8]
    public var node: UInt64
    public var type: NodeType
    public init(name: [UInt8], node: UInt64, type: NodeType) { self.name = name; self.node = node; self.type = type }
}

/// One extended attribute: the full name ("user.comment", "security.selinux",
/// "system.posix_acl_access") and its value. POSIX ACLs come in the Linux xattr form.
public struct Xattr: Sendable, Equatable {
    public let name: String
    public let value: [UInt8]
    public init(name: String, value: [UInt8]) { self.name = name; self.value = value }
}

/// Space and inode figures as the Linux kernel's own driver reports them in `statfs`, so that
/// `df`, FUSE `statfs` and a kernel mount of the same filesystem agree.
public struct FilesystemUsage: Sendable, Equatable {
    public let blockSize: UInt64
    /// f_blocks.
    public let totalBlocks: UInt64
    /// f_bfree.
    public let freeBlocks: UInt64
    /// f_bavail: what an unprivileged user may still use.
    public let availableBlocks: UInt64
    public let totalInodes: UInt64
    public let freeInodes: UInt64
    public let maxNameLength: UInt64

    public init(blockSize: UInt64, totalBlocks: UInt64, freeBlocks: UInt64, availableBlocks: UInt64,
                totalInodes: UInt64, freeInodes: UInt64, maxNameLength: UInt64 = 255) {
        self.blockSize = blockSize; self.totalBlocks = totalBlocks; self.freeBlocks = freeBlocks
        self.availableBlocks = availableBlocks; self.totalInodes = totalInodes; self.freeInodes = freeInodes
        self.maxNameLength = maxNameLength
    }
}

/// What a setattr changes; nil fields stay as they are (FUSE_SET_ATTR_* bits, utimensat's
/// UTIME_OMIT).
public struct AttributeChanges: Sendable {
    public enum Time: Sendable, Equatable {
        /// UTIME_NOW.
        case now
        case at(Timestamp)
    }
    /// Permission bits (the type bits of the node never change).
    public var mode: UInt16?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var accessTime: Time?
    public var modificationTime: Time?
    /// An explicit ctime (FUSE_SET_ATTR_CTIME); otherwise any change sets it to now.
    public var changeTime: Timestamp?
    public init(mode: UInt16? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                accessTime: Time? = nil, modificationTime: Time? = nil, changeTime: Timestamp? = nil) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.size = size
        self.accessTime = accessTime; self.modificationTime = modificationTime; self.changeTime = changeTime
    }
}

/// Who creates a new node and with what: the caller's ids (FUSE request context, or the
/// owner copy-in wants), the mode including the S_IF* type bits, and a device number.
public struct NewInode: Sendable {
    public var mode: UInt16
    public var uid: UInt32
    public var gid: UInt32
    public var rdevMajor: UInt32 = 0
    public var rdevMinor: UInt32 = 0
    public init(mode: UInt16, uid: UInt32, gid: UInt32, rdevMajor: UInt32 = 0, rdevMinor: UInt32 = 0) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.rdevMajor = rdevMajor; self.rdevMinor = rdevMinor
    }
}

/// An open regular file. Reads must be safe from several threads at once (the FUSE server
/// reads in parallel, outside any driver lock where the driver can).
/// One image a filesystem's boot catalog names (the El Torito catalog of an ISO 9660 volume),
/// in the terms `xorriso -report_el_torito plain` uses, so `filesystems --boot-images` can list
/// it without knowing the driver.
public struct BootImage: Sendable, Equatable {
    /// 1 for the Initial/Default Entry, then the section entries in catalog order.
    public var number: Int
    /// "BIOS", "UEFI", "PPC", "Mac" or the platform id in hex.
    public var platform: String
    public var bootable: Bool
    /// "none", "fd1.2", "fd1.4", "fd2.8", "hd" or "?" for a value no specification defines.
    public var emulation: String
    /// The image's first sector, in the filesystem's blocks, and the bytes loaded at boot.
    public var startBlock: UInt64
    public var loadBytes: UInt64

    public init(number: Int, platform: String, bootable: Bool, emulation: String, startBlock: UInt64, loadBytes: UInt64) {
        self.number = number
        self.platform = platform
        self.bootable = bootable
        self.emulation = emulation
        self.startBlock = startBlock
        self.loadBytes = loadBytes
    }
}

public protocol GuestFile: AnyObject, Sendable {
    var size: UInt64 { get }
    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int
    /// The ranges that hold data (the rest reads as zeros): copy-out keeps holes with it.
    func dataRanges() throws -> [(offset: UInt64, length: UInt64)]
}

/// A filesystem opened on a block device, read-only.
public protocol GuestFilesystem: AnyObject, Sendable {
    /// The type as blkid names it: "ext4", "vfat", "iso9660".
    var typeName: String { get }
    /// The device the filesystem was opened on.
    var device: any BlockDevice { get }
    var rootNode: UInt64 { get }
    var isWritable: Bool { get }
    /// What opening found and worked around (a backup superblock used, a journal replayed in
    /// memory, the dirty bit set): one line each, for the commands to print.
    var warnings: [String] { get }
    /// The preferred I/O size (st_blksize).
    var blockSize: UInt32 { get }
    /// How many bytes the filesystem says it spans (ext: blocks count × block size), which a
    /// truncated image's device may not hold.
    var declaredSize: UInt64 { get }
    func attributes(_ node: UInt64) throws -> NodeAttributes
    /// The node `name` names in directory `dir`, or nil.
    func lookup(_ dir: UInt64, _ name: [UInt8]) throws -> UInt64?
    /// The entries of directory `dir` without "." and "..". A damaged part of a directory
    /// loses only its own entries (the driver warns); the rest are listed.
    func entries(_ dir: UInt64) throws -> [DirectoryEntry]
    func readlink(_ node: UInt64) throws -> [UInt8]
    func openFile(_ node: UInt64) throws -> any GuestFile
    func xattrs(_ node: UInt64) throws -> [Xattr]
    /// One attribute's value, or nil.
    func xattr(_ node: UInt64, name: String) throws -> [UInt8]?
    func usage() throws -> FilesystemUsage
    /// Where damage met after open goes (default: standard error); the mount server, whose
    /// standard error is /dev/null, sends it to its log.
    func setDamageLog(_ sink: @escaping @Sendable (String) -> Void)
    /// Writes back what is pending (a writable filesystem is left clean for its fsck) and
    /// releases the library's state. Nothing may be called afterwards.
    func close() throws
    /// The boot images the volume's boot catalog names; empty for most filesystems.
    var bootImages: [BootImage] { get }
}

/// renameat2's flags (linux/fs.h).
public struct RenameFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Fail with EEXIST instead of replacing an existing target.
    public static let noReplace = RenameFlags(rawValue: 1)
    /// Swap the two names atomically; both must exist.
    public static let exchange = RenameFlags(rawValue: 2)
}

/// How setxattr treats an existing attribute (XATTR_CREATE / XATTR_REPLACE, sys/xattr.h).
public enum XattrSetMode: Sendable {
    case createOrReplace
    /// EEXIST when the attribute exists.
    case create
    /// ENODATA when it does not.
    case replace
}

/// A filesystem opened for writing: every write operation the FUSE server, copy-in and edit
/// use. Permission checks are the kernel's (default_permissions) or the caller's; a driver
/// refuses what its on-disk format cannot store with the errno the kernel's driver gives
/// (vfat: EPERM for chown to another owner, symlinks and hard links; ENOTSUP for xattrs).
public protocol WritableGuestFilesystem: GuestFilesystem {
    /// A regular file, device node, FIFO or socket (the type is in `spec.mode`).
    func createNode(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64
    func makeDirectory(in dir: UInt64, name: [UInt8], _ spec: NewInode) throws -> UInt64
    func makeSymlink(in dir: UInt64, name: [UInt8], target: [UInt8], uid: UInt32, gid: UInt32) throws -> UInt64
    func link(_ target: UInt64, into dir: UInt64, name: [UInt8]) throws
    /// Removes a name; a node left with no name and no open reference is freed by
    /// `releaseNode` (the FUSE server calls it at forget), at once when nothing holds it.
    func unlink(in dir: UInt64, name: [UInt8]) throws
    func removeDirectory(in dir: UInt64, name: [UInt8]) throws
    func rename(from srcDir: UInt64, _ srcName: [UInt8], to dstDir: UInt64, _ dstName: [UInt8], flags: RenameFlags) throws
    func write(_ node: UInt64, at offset: UInt64, _ data: UnsafeRawBufferPointer) throws -> Int
    func truncate(_ node: UInt64, to size: UInt64) throws
    func setAttributes(_ node: UInt64, _ changes: AttributeChanges) throws
    func allocate(_ node: UInt64, at offset: UInt64, length: UInt64, keepSize: Bool) throws
    func punchHole(_ node: UInt64, at offset: UInt64, length: UInt64) throws
    func setXattr(_ node: UInt64, name: String, value: [UInt8], mode: XattrSetMode) throws
    func removeXattr(_ node: UInt64, name: String) throws
    /// Frees a node that has no name left once nothing refers to it.
    func releaseNode(_ node: UInt64) throws
    /// Makes everything written so far durable (fsync/syncfs).
    func sync() throws
    /// Set by the FUSE server: whether the kernel still holds `node`, so that a node unlinked
    /// while open is freed at its last forget, not at unlink. Called under the driver's lock;
    /// must not call back into the filesystem.
    func setNodeInUse(_ check: @escaping @Sendable (UInt64) -> Bool)
}

extension GuestFilesystem {
    public var warnings: [String] { [] }
    public var declaredSize: UInt64 { device.size }
    public var bootImages: [BootImage] { [] }
    public func setDamageLog(_ sink: @escaping @Sendable (String) -> Void) {}

    public func xattr(_ node: UInt64, name: String) throws -> [UInt8]? {
        try xattrs(node).first { $0.name == name }?.value
    }
}

extension Timestamp {
    /// The current time (clock_gettime CLOCK_REALTIME).
    public static var now: Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int32(ts.tv_nsec))
    }
}
