import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Copies guest files and trees to the host, keeping what virt-copy-out keeps and more:
/// contents, modes, access and modification times to the nanosecond, symlinks (never followed),
/// hardlinks (one host inode per guest inode), sparse holes, device nodes and FIFOs, extended
/// attributes, and owners when running as root.
///
/// The tree is walked on one thread (directories, links and special files are made as they are
/// met); regular files are queued and copied by `workers` threads in batches of at most
/// `batchSize`, so file data and the host's per-file syscalls overlap. Directory metadata
/// (mode, times) is applied last, children before parents, once nothing more is created in them.
final class CopyOut: @unchecked Sendable {
    /// Where one guest object lands: a name (checked by `GuestName`) in an open host directory.
    struct Target {
        let parent: HostDirectory
        let name: HostDirectory.Name
        var display: String { parent.display(name) }
    }

    let tree: MountTree
    let asRoot = geteuid() == 0
    /// The process's umask (read once: umask(2) can only be read by setting it).
    private let umaskBits: mode_t = { let bits = umask(0o022); umask(bits); return bits }()
    /// Guest inodes with several links already copied, and where. Walker thread only.
    private var linked: [GuestNode: Target] = [:]
    /// Directories already copied: a guest directory met a second time (a hard-linked
    /// directory, or one that contains its own ancestor: only a damaged or hostile image has
    /// these) is skipped, so the walk is bounded by the image, not by the paths through it.
    private var copiedDirectories: Set<GuestNode> = []
    /// How deep the walk is now: a chain deeper than DirectoryWalkPath.maxDepth is not
    /// descended into (the recursion's stack, and no real guest nests that deep).
    private var depth = 0
    /// Guest entries left out because the image is damaged there (bad names, directory loops):
    /// the rest is copied, and the command fails at the end. Walker thread only.
    private(set) var skipped = 0
    /// Warnings already given, so a tree of 10 000 files does not print 10 000 lines.
    private let warned = Mutex<Set<String>>([])
    /// Regular files waiting for the workers. Walker thread only.
    private var pending: [(node: GuestNode, info: NodeAttributes, target: Target)] = []
    /// Directories whose walk is done, children first; their metadata is applied once the
    /// files queued in them are written (after the next drain), then their descriptors close.
    private var finished: [(node: GuestNode, info: NodeAttributes, directory: HostDirectory)] = []

    /// Queued files are copied when this many are waiting (bounds the queue's memory).
    static let batchSize = 512
    /// Worker threads for file data, at most one per CPU the process may run on (as
    /// libdispatch's concurrentPerform, which WorkerThreads replaced, ran them): the workers
    /// take turns on the libext2fs lock and on the target directory's inode lock, and more of
    /// them than CPUs only wait for each other. Four workers on this 2-core machine cost copy-out
    /// 15% more CPU than be8e785's two (bench/before-after.sh, 419-655 context switches a run
    /// against 36-56), two bring it to within 4%.
    static let workers = 4

    /// Bytes and files copied, for `--progress`.
    let progress: ProgressReporter

    init(tree: MountTree, progress: ProgressReporter = .off) {
        self.tree = tree
        self.progress = progress
    }

    /// Copies each (guest node, host target) and finishes every queued file and directory.
    func run(_ items: [(node: GuestNode, target: Target)]) throws {
        for item in items { try copy(item.node, to: item.target) }
        try drain()
    }

    /// Copies the guest object at `node` to `target` (which must not exist yet).
    private func copy(_ node: GuestNode, to target: Target) throws {
        let fs = tree.filesystem(of: node)
        let info = try fs.attributes(node.inode)
        if !info.isDirectory, info.links > 1, let first = linked[node] {
            try target.parent.makeHardLink(target.name, to: first.name, in: first.parent)
            return
        }
        switch info.type {
        case .directory:
            guard copiedDirectories.insert(node).inserted else {
                Diagnostics.warn("\(target.display): skipped: guest directory inode \(node.inode) was met before " +
                                 "(a directory hard link or loop: the image is damaged)")
                skipped += 1
                return
            }
            let directory = try target.parent.makeDirectory(target.name)
            guard depth < DirectoryWalkPath.maxDepth else {
                warnOnce("depth", DirectoryWalkPath.depthWarning(path: target.display))
                skipped += 1
                finished.append((node, info, directory))
                return
            }
            depth += 1
            defer { depth -= 1 }
            let entries = try tree.entries(node) { rejected in
                Diagnostics.warn(rejected.message)
                skipped += 1
            }
            for entry in entries {
                guard let name = HostDirectory.Name(entry.name) else { continue }  // entries() left out bad names
                try copy(entry.node, to: Target(parent: directory, name: name))
            }
            // After its children: a drain applies its times only once nothing more appears in it.
            finished.append((node, info, directory))
            return
        case .regular:
            if info.links > 1 {
                // Copied here, not queued: later names of the inode link to it as they are met.
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
                defer { buffer.deallocate() }
                try copyRegular(node, info, to: target, buffer: buffer)
                linked[node] = target
            } else {
                pending.append((node, info, target))
                if pending.count >= Self.batchSize { try drain() }
            }
            return
        case .symlink:
            try target.parent.makeSymlink(target.name, to: fs.readlink(node.inode))
        case .fifo:
            try target.parent.makeNode(target.name, mode: UInt32(S_IFIFO) | info.permissions, major: 0, minor: 0)
        case .characterDevice, .blockDevice:
            guard asRoot else {
                warnOnce("device nodes", "\(target.display): device node skipped (creating device nodes needs root)")
                return
            }
            try target.parent.makeNode(target.name, mode: UInt32(info.mode), major: info.rdevMajor, minor: info.rdevMinor)
        default:
            warnOnce("sockets", "\(target.display): socket skipped (sockets cannot be copied)")
            return
        }
        if info.links > 1 { linked[node] = target }
        try applyMetadata(info, node: node, to: target)
    }

    /// Copies the queued files on `workers` threads (the first failure is thrown once all
    /// stop), then applies the metadata of the directories finished so far.
    private func drain() throws {
        let jobs = pending
        pending.removeAll(keepingCapacity: true)
        if !jobs.isEmpty {
            let next = Atomic<Int>(0)
            let failure = Mutex<(any Error)?>(nil)
            WorkerThreads.perform(iterations: min(Self.workers, jobs.count, WorkerThreads.processorCount)) { _ in
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
                defer { buffer.deallocate() }
                while true {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < jobs.count, failure.withLock({ $0 == nil }) else { return }
                    let job = jobs[index]
                    do {
                        try copyRegular(job.node, job.info, to: job.target, buffer: buffer)
                    } catch {
                        failure.withLock { if $0 == nil { $0 = error } }
                    }
                }
            }
            if let error = failure.withLock({ $0 }) { throw error }
        }
        let done = finished
        finished.removeAll()
        for directory in done {
            try applyMetadata(directory.info, node: directory.node, to: directory.directory.metadata)
        }
    }

    /// A regular file: data, then metadata through the open descriptor.
    private func copyRegular(_ node: GuestNode, _ info: NodeAttributes, to target: Target,
                             buffer: UnsafeMutableRawBufferPointer) throws {
        // Created with its final mode where that gives exactly the mode (see
        // HostDirectory.createsWithExactMode): not set-id or sticky bits, which must follow
        // chown (chown clears them), and nothing the umask takes away.
        let permissions = mode_t(info.permissions)
        let exact = target.parent.createsWithExactMode && permissions & 0o7000 == 0 && permissions & umaskBits == 0
        let file = try target.parent.createFile(target.name, mode: exact ? permissions : 0o600)
        defer { try? file.fd.close() }
        try copyData(tree.filesystem(of: node).openFile(node.inode), to: file, buffer: buffer)
        // Most of a guest's files are root's, as is this process: their chown would change nothing.
        let owned = target.parent.newFilesAreOwned(by: info.uid, info.gid)
        try applyMetadata(info, node: node, to: file, modeAlreadySet: exact, ownerAlreadySet: owned)
        progress.addFile()
    }

    /// Writes only the parts of the file that hold data, then sets the length: holes stay holes.
    private func copyData(_ file: any GuestFile, to target: HostFile, buffer: UnsafeMutableRawBufferPointer) throws {
        let fd = target.fd
        var written: UInt64 = 0
        do {
            for range in try file.dataRanges() {
                var offset = range.offset
                let end = range.offset + range.length
                while offset < end {
                    let want = Int(min(UInt64(buffer.count), end - offset))
                    let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]), at: offset)
                    guard n > 0 else { break }
                    _ = try fd.writeAll(toAbsoluteOffset: Int64(offset), UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                    offset += UInt64(n)
                    progress.add(bytes: UInt64(n))
                }
                written = offset
            }
            // A trailing hole (or an empty file) needs the length set; otherwise writing already did it.
            if written != file.size { try target.setLength(file.size) }
        } catch let e as Errno {
            throw CLIError(message: "\(target.display): write: \(e.description)")
        }
    }

    /// Owner first (chown clears set-id bits), then xattrs, mode, and times last.
    private func applyMetadata(_ info: NodeAttributes, node: GuestNode, to target: Target) throws {
        if asRoot { try target.parent.changeOwner(target.name, uid: info.uid, gid: info.gid) }
        try copyXattrs(node) { try target.parent.setXattr(target.name, $0) }
        if !info.isSymlink { try target.parent.changeMode(target.name, UInt16(truncatingIfNeeded: info.permissions)) }
        try target.parent.setTimes(target.name, access: info.atime, modification: info.mtime)
    }

    /// The same order for a regular file or a directory, through its open descriptor. A file
    /// created with its final mode, which has no set-id bits for chown to clear, needs no chmod;
    /// one created with the right owner, no chown.
    private func applyMetadata(_ info: NodeAttributes, node: GuestNode, to target: HostFile,
                               modeAlreadySet: Bool = false, ownerAlreadySet: Bool = false) throws {
        if asRoot && !ownerAlreadySet { try target.changeOwner(uid: info.uid, gid: info.gid) }
        try copyXattrs(node, set: target.setXattr)
        if !modeAlreadySet { try target.changeMode(UInt16(truncatingIfNeeded: info.permissions)) }
        try target.setTimes(access: info.atime, modification: info.mtime)
    }

    /// Copies every xattr; one the host refuses (e.g. trusted.* without root) is warned about once per namespace.
    private func copyXattrs(_ node: GuestNode, set: (Xattr) throws -> Void) throws {
        for attribute in try tree.filesystem(of: node).xattrs(node.inode) {
            do {
                try set(attribute)
            } catch let e as CLIError {
                let kind = String(attribute.name.prefix(while: { $0 != "." }))
                warnOnce("xattr-\(kind)", "\(e.message) (further \(kind).* attributes that fail are not reported)")
            }
        }
    }

    private func warnOnce(_ key: String, _ message: String) {
        if warned.withLock({ $0.insert(key).inserted }) { Diagnostics.warn(message) }
    }
}
