import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import Synchronization

/// What an open file or directory handle (`fi->fh`) stands for.
enum OpenHandle: Sendable {
    /// A regular file with its block map resolved at open; reads go to the device unlocked.
    case file(any GuestFile, OpenFlags)
    /// A directory listing taken at opendir, so offsets stay stable across readdir calls.
    case directory(DirectoryListing)
}

/// What the open(2) flags of a file handle ask of its reads and writes.
struct OpenFlags: Sendable {
    /// O_DIRECT: offsets and lengths must be multiples of the logical sector size, as the
    /// kernel's ext4 (iomap_dio_rw over a 512-byte-sector device) requires; EINVAL otherwise.
    /// (The alignment of the caller's memory is not visible through FUSE.)
    var direct = false

    init(_ flags: Int32) { direct = flags & Self.oDirect != 0 }

    /// O_DIRECT (asm-generic/fcntl.h; hidden by Swift's Glibc module without _GNU_SOURCE).
    static let oDirect: Int32 = 0o40000
    static let directAlignment: Int64 = 512

    /// EINVAL for an O_DIRECT transfer that is not sector-aligned.
    func check(offset: Int64, size: Int) throws(FuseError) {
        guard direct else { return }
        guard offset % Self.directAlignment == 0, Int64(size) % Self.directAlignment == 0 else {
            throw FuseError(.invalidArgument)
        }
    }
}

/// A directory's entries as opendir saw them, with `.` and `..` first.
struct DirectoryListing: Sendable {
    struct Item: Sendable {
        let name: [UInt8]
        let node: GuestNode
        /// The node's type, for d_type.
        let type: NodeType
        /// `.` and `..` are listed but never looked up (passthrough_ll.c does the same).
        let isDot: Bool
    }
    let items: [Item]
}

/// Open files and directories, by the `fh` number handed to the kernel. opendir/open insert,
/// releasedir/release remove; everything left is dropped when the session ends.
final class HandleTable: Sendable {
    private struct State {
        var handles: [UInt64: OpenHandle] = [:]
        var next: UInt64 = 1
    }
    private let state = Mutex(State())

    func insert(_ handle: OpenHandle) -> UInt64 {
        state.withLock { s in
            let fh = s.next
            s.next += 1
            s.handles[fh] = handle
            return fh
        }
    }

    func get(_ fh: UInt64) -> OpenHandle? { state.withLock { $0.handles[fh] } }

    @discardableResult
    func remove(_ fh: UInt64) -> OpenHandle? { state.withLock { $0.handles.removeValue(forKey: fh) } }

    var count: Int { state.withLock { $0.handles.count } }
}
