import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import Synchronization

/// An ext2/3/4 filesystem opened through libext2fs over one of our block devices.
///
/// libext2fs is not thread-safe, so every call into it runs under `lock` (DESIGN.md §1).
/// File *data* is not read under the lock: `Ext2File` maps a file's blocks under the lock and
/// then reads them from `device` directly, which is what lets several FUSE reads run at once.
package final class Ext2Filesystem: @unchecked Sendable {
    /// The device the filesystem lives on (a partition, an LV, a whole disk).
    package let device: any BlockDevice
    package let isWritable: Bool
    /// Facts from the superblock, read once at open.
    package let superblock: Ext2Superblock
    package let blockSize: Int
    /// Lines for the user about how the filesystem was opened (a journal replayed in memory,
    /// a journal that could not be replayed). Callers print them as warnings.
    package let warnings: [String]
    /// What journal recovery did at open, when the journal needed it and was replayed.
    package let journalReplay: JournalReplayReport?

    /// Where damage met after open is reported (Ext2Directory+Salvage.swift).
    let damageLog = DamageLog()
    /// Whole directories recently read, for fast lookups (bounded; see Ext2DirectoryCache).
    let directoryCache = Ext2DirectoryCache(maxEntries: 100_000)

    /// Per-inode counters bumped by every change to a file's data or size, so that open
    /// `Ext2File`s (whose block maps were resolved at open) notice and map again.
    let dataVersions = Mutex<[UInt32: UInt64]>([:])
    /// Whether a user (the FUSE server) still holds an inode; see `setInodeInUse`.
    /// Boxed: a closure kept in a generic container is re-wrapped in a reabstraction thunk each
    /// time it passes through, and the chain of thunks grew with every call.
    final class InUseCheck: Sendable {
        let check: @Sendable (UInt32) -> Bool
        init(_ check: @escaping @Sendable (UInt32) -> Bool) { self.check = check }
    }
    let inodeInUse = Mutex<InUseCheck?>(nil)

    // Guarded by `lock`: libext2fs's handle and the token our io_manager resolves.
    private let fs: ext2_filsys
    private let lock = BlockingLock()
    private var closed = false
    /// Guarded by `lock`: what writing has set up and what it left to do at close.
    var writeState = WriteState()
    /// Guarded by `lock`: the inode-table runs of the last inode blocks missed in the cache,
    /// at most `recentInodeMissLimit` (Ext2Filesystem+InodeReadahead.swift).
    var recentInodeTableMisses: [UInt64] = []

    /// The root directory's inode number (EXT2_ROOT_INO, ext4 disk layout "Special inodes").
    package static let rootInode: UInt32 = 2

    /// Opens the filesystem on `device`. Fails with a clear error when there is none.
    ///
    /// A filesystem whose journal needs recovery is recovered first (Journal/): read-only, the
    /// journal is replayed into a `MemoryOverlayDevice` over `device` (which then becomes
    /// `self.device`) and the image is not touched; writable, it is replayed into `device`.
    ///
    /// Read-only, a damaged primary superblock (bad magic, bad checksum, impossible geometry)
    /// falls back to the first backup superblock that opens, as e2fsck does
    /// (Ext2Filesystem+BackupSuperblock.swift), with a warning; nothing is written.
    package convenience init(device: any BlockDevice, writable: Bool = false) throws {
        do {
            guard Ext2Superblock.probe(device) else {
                throw ImageError(path: device.displayName, offset: 1024, structure: "ext superblock",
                                 reason: Self.badMagicReason, errno: .invalidArgument)
            }
            let recovered = try Self.recoverJournal(device: device, writable: writable)
            try self.init(opening: recovered.device, writable: writable, warnings: recovered.warnings,
                          journalReplay: recovered.report)
        } catch let primary as ImageError where !writable && Self.isPrimarySuperblockDamage(primary) {
            guard let backup = Self.findBackupSuperblock(on: device) else { throw primary }
            try self.init(opening: device, writable: false, superblock: backup,
                          warnings: [Self.backupWarning(device: device, primary: primary, backup: backup)])
        }
    }

    /// Opens libext2fs over `device` as it is, with no journal recovery; from the backup
    /// superblock `superblock` when one is given (read-only opens only).
    init(opening device: any BlockDevice, writable: Bool, superblock backup: BackupSuperblock? = nil,
         warnings: [String] = [], journalReplay: JournalReplayReport? = nil) throws {
        guard backup != nil || Ext2Superblock.probe(device) else {
            throw ImageError(path: device.displayName, offset: 1024, structure: "ext superblock",
                             reason: Self.badMagicReason, errno: .invalidArgument)
        }
        let token = IOManagerBridge.register(device)
        defer { IOManagerBridge.unregister(token) }
        var flags = Int32(EXT2_FLAG_64BITS)
        if writable { flags |= Int32(EXT2_FLAG_RW) } else { flags |= Int32(EXT2_FLAG_SKIP_MMP) }
        var handle: ext2_filsys?
        let rc = ext2fs_open2(token, nil, flags, Int32(backup?.block ?? 0), UInt32(backup?.blockSize ?? 0),
                              cext2fs_io_manager(), &handle)
        guard rc == 0, let handle else {
            throw ImageError(path: device.displayName, offset: backup?.byteOffset ?? 1024, structure: "ext superblock",
                             reason: "cannot open filesystem: \(Ext2Error(code: rc).message)",
                             errno: Ext2Error(code: rc).errno, underlying: Ext2Error(code: rc))
        }
        self.fs = handle
        self.device = device
        self.isWritable = writable
        self.blockSize = Int(cext2fs_blocksize(handle))
        self.superblock = Ext2Superblock(cext2fs_super(handle).pointee)
        self.warnings = warnings
        self.journalReplay = journalReplay
    }

    deinit { try? close() }

    /// Flushes (when writable) and closes the libext2fs handle. Later calls fail.
    ///
    /// Writable and changed: inodes unlinked while still in use are freed, the superblock is
    /// marked clean again, and ext2fs_close2 writes bitmaps, group descriptors and superblocks
    /// (with their checksums) before the device is flushed, so `e2fsck -fn` finds nothing to fix.
    package func close() throws {
        try lock.withLock { () throws -> Void in
            guard !closed else { return }
            if isWritable && writeState.prepared {
                try freeOrphansLocked(fs)
                try finishWritingLocked(fs)
            }
            closed = true
            let rc = isWritable ? ext2fs_close2(fs, 0) : ext2fs_free_then_zero(fs)
            try ext2Check(rc, structure: "close", device: device)
        }
    }

    /// Runs `body` with the libext2fs handle under the filesystem lock.
    /// The only way any other file reaches libext2fs.
    func withHandle<R>(_ body: (ext2_filsys) throws -> R) throws -> R {
        try lock.withLock { () throws -> R in
            guard !closed else {
                throw ImageError(path: device.displayName, reason: "filesystem is closed", errno: .badFileDescriptor)
            }
            return try body(fs)
        }
    }

    /// Turns a libext2fs return code into a thrown `ImageError`, preferring the rich I/O
    /// error the io_manager callback kept over the bare EIO libext2fs saw.
    func check(_ code: errcode_t, _ structure: String, inode: UInt32? = nil) throws {
        guard code != 0 else { return }
        let what = inode.map { "\(structure) of inode \($0)" } ?? structure
        if code == errcode_t(EIO), let io = IOManagerBridge.context(of: fs.pointee.io), let inner = io.lastError {
            io.lastError = nil
            throw ImageError(path: device.displayName, offset: inner.offset, structure: what,
                             reason: inner.reason, errno: inner.errno, underlying: inner)
        }
        try ext2Check(code, structure: what, device: device)
    }
}

/// libext2fs frees a read-only handle without writing anything back.
private func ext2fs_free_then_zero(_ fs: ext2_filsys) -> errcode_t {
    ext2fs_free(fs)
    return 0
}
